"""Finding and reading the SMPL body-model files the user downloaded (they are licensed and cannot ship).

The official files are Python pickles, some holding chumpy arrays (a package that no longer installs on
modern Python) and a scipy sparse joint regressor. They are read with a restricted unpickler that only
builds numpy arrays, scipy sparse matrices and a stand-in for chumpy objects, so no code from the file runs.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

# Names the SMPL downloads use, most specific first; .npz conversions are accepted too.
MODEL_FILE_NAMES = {
    "neutral": ["SMPL_NEUTRAL.pkl", "SMPL_NEUTRAL.npz", "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl",
                "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"],
    "male": ["SMPL_MALE.pkl", "SMPL_MALE.npz", "basicmodel_m_lbs_10_207_0_v1.1.0.pkl",
             "basicModel_m_lbs_10_207_0_v1.0.0.pkl"],
    "female": ["SMPL_FEMALE.pkl", "SMPL_FEMALE.npz", "basicmodel_f_lbs_10_207_0_v1.1.0.pkl",
               "basicModel_f_lbs_10_207_0_v1.0.0.pkl"],
}
REQUIRED_KEYS = ("v_template", "f", "J_regressor", "weights", "kintree_table", "shapedirs", "posedirs")
WHERE_TO_GET = (
    "register at https://smpl.is.tue.mpg.de, download 'SMPL for Python' (version 1.1.0), and put "
    "SMPL_NEUTRAL.pkl (or basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl) in the folder passed as --smpl-dir"
)


class SmplFilesError(FileNotFoundError):
    """The SMPL model folder is missing, incomplete or unreadable; the message says which file and where to get it."""


class _ChumpyStandIn:
    """Takes the place of chumpy.Ch while unpickling; its array lives in the pickled state under 'x'."""

    def __setstate__(self, state):
        self.state = state

    def to_numpy(self) -> np.ndarray:
        return np.asarray(self.state["x"] if isinstance(self.state, dict) else self.state)


class _SafeUnpickler(pickle.Unpickler):
    _ALLOWED_PREFIXES = ("numpy", "scipy.sparse")
    # what pickles of numpy arrays need besides numpy itself (protocol 2 stores bytes via _codecs.encode)
    _ALLOWED_GLOBALS = {("builtins", "object"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
                        ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if module.startswith("chumpy"):
            return _ChumpyStandIn
        if module.startswith(self._ALLOWED_PREFIXES) or (module, name) in self._ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a model file")


def _to_array(value) -> np.ndarray:
    if isinstance(value, _ChumpyStandIn):
        return value.to_numpy()
    if hasattr(value, "toarray"):  # scipy sparse joint regressor
        return value.toarray()
    return np.asarray(value)


def find_model_file(folder: str | Path, gender: str = "neutral") -> Path:
    folder = Path(folder)
    if gender not in MODEL_FILE_NAMES:
        raise ValueError(f"gender must be one of {', '.join(MODEL_FILE_NAMES)}, got {gender!r}")
    if folder.is_file():
        return folder
    if not folder.is_dir():
        raise SmplFilesError(f"SMPL model folder {folder} does not exist; {WHERE_TO_GET}")
    for sub in (folder, folder / "smpl"):
        for name in MODEL_FILE_NAMES[gender]:
            if (sub / name).is_file():
                return sub / name
    raise SmplFilesError(
        f"{folder} has no SMPL {gender} model (looked for {', '.join(MODEL_FILE_NAMES[gender])}); {WHERE_TO_GET}"
    )


def load_model_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read a SMPL model file (.pkl or .npz) into plain numpy arrays, checking every required key."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                raw = {k: data[k] for k in data.files}
        else:
            with path.open("rb") as fh:
                raw = _SafeUnpickler(fh, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, ValueError, EOFError) as exc:
        raise SmplFilesError(f"{path}: not a readable SMPL model file ({exc}); {WHERE_TO_GET}") from None
    if not isinstance(raw, dict):
        raise SmplFilesError(f"{path}: expected a dictionary of model arrays, found {type(raw).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise SmplFilesError(f"{path}: missing {', '.join(missing)}; is this a SMPL model file? {WHERE_TO_GET}")
    arrays = {k: _to_array(v) for k, v in raw.items() if k in REQUIRED_KEYS}
    arrays["f"] = arrays["f"].astype(np.int64)
    arrays["kintree_table"] = arrays["kintree_table"].astype(np.int64)
    return arrays
