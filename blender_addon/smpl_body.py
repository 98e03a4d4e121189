"""Add SMPL body: a skinned mesh from the animator's own SMPL model file, bound to the SMPL preview rig.

Blender has neither torch nor scipy, so the model file is read with numpy alone: `.npz` conversions
directly, the official `.pkl` downloads through a restricted unpickler (`smpl_files`, vendored from
backend/body/ by build_addon.py) that builds only numpy arrays. Chumpy objects and the scipy sparse
joint regressor are replaced by stand-ins that hold their arrays, so no code from the file runs and
scipy is never imported. The mesh gets the rest vertices, faces, one vertex group per SMPL joint from
the skinning weights (SMPL's two hand joints go to the wrists) and an Armature modifier, so it moves
with whatever action the rig plays. Shape (betas) and pose correctives are not applied: the body is
the model's template.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import bpy
import numpy as np

from . import smpl_files
from .retarget.skeleton import JOINT_NAMES
from .retarget.transfer import joints_to_blender
from .rounds import RoundError, get_armature

WHERE_TO_GET = ("register at https://smpl.is.tue.mpg.de, download 'SMPL for Python' (1.1.0) and put "
                "SMPL_NEUTRAL.pkl (or an .npz conversion) in the folder set under 'SMPL folder'")
HAND_TO_WRIST = {22: 20, 23: 21}  # SMPL's hand joints are not in the 22-joint rig


class _SparseStandIn:
    """Takes the place of a scipy.sparse matrix while unpickling; rebuilt densely from its stored arrays."""

    def __init__(self, *args, **kwargs):  # scipy's own reduce calls the class with no arguments
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else dict(state[1]) if isinstance(state, tuple) else {}

    def toarray(self) -> np.ndarray:
        s = self.state
        shape = tuple(s.get("_shape", s.get("shape")))
        kind = self.kind
        dense = np.zeros(shape, dtype=np.float64)
        if kind in ("csc", "csr"):
            data, indices, indptr = (np.asarray(s[k]) for k in ("data", "indices", "indptr"))
            for major in range(len(indptr) - 1):
                sl = slice(indptr[major], indptr[major + 1])
                if kind == "csc":
                    np.add.at(dense, (indices[sl], major), data[sl])
                else:
                    np.add.at(dense, (major, indices[sl]), data[sl])
        elif kind == "coo":
            coords = s.get("coords") or (s["row"], s["col"])
            np.add.at(dense, (np.asarray(coords[0]), np.asarray(coords[1])), np.asarray(s["data"]))
        else:
            raise pickle.UnpicklingError(f"unsupported sparse matrix format '{kind}' in the model file")
        return dense


def _sparse_class(name: str):
    kind = name.split("_")[0]  # csc_matrix, csr_array, coo_matrix...
    return type(f"_Sparse_{name}", (_SparseStandIn,), {"kind": kind})


class _NumpyOnlyUnpickler(smpl_files._SafeUnpickler):
    def find_class(self, module: str, name: str):
        if module.startswith("scipy.sparse"):
            return _sparse_class(name)
        return super().find_class(module, name)


def find_model_file(folder: str, gender: str = "neutral") -> Path:
    if not folder.strip():
        raise RoundError(f"Set the SMPL folder first: {WHERE_TO_GET}")
    path = Path(bpy.path.abspath(folder))
    if path.is_file():
        return path
    if not path.is_dir():
        raise RoundError(f"SMPL folder '{path}' does not exist; {WHERE_TO_GET}")
    for sub in (path, path / "smpl"):
        for name in smpl_files.MODEL_FILE_NAMES[gender]:
            if (sub / name).is_file():
                return sub / name
    raise RoundError(f"'{path}' has no SMPL {gender} model (looked for "
                     f"{', '.join(smpl_files.MODEL_FILE_NAMES[gender])}); {WHERE_TO_GET}")


def load_model(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a SMPL .npz or .pkl file, numpy only; RoundError with the reason when unreadable."""
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as data:
                raw = {k: data[k] for k in data.files}
        else:
            with path.open("rb") as fh:
                raw = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, ValueError, EOFError, KeyError, TypeError, AttributeError) as exc:
        raise RoundError(f"{path.name}: not a readable SMPL model file ({exc}); {WHERE_TO_GET}") from None
    if not isinstance(raw, dict):
        raise RoundError(f"{path.name}: expected a dictionary of model arrays, found {type(raw).__name__}")
    missing = [k for k in ("v_template", "f", "weights", "J_regressor") if k not in raw]
    if missing:
        raise RoundError(f"{path.name}: missing {', '.join(missing)}; is this a SMPL model file?")
    arrays = {k: smpl_files._to_array(raw[k]) for k in ("v_template", "f", "weights", "J_regressor")}
    arrays["f"] = arrays["f"].astype(np.int64)
    return arrays


def add_body(armature_name: str, folder: str, gender: str = "neutral") -> str:
    """A skinned SMPL mesh parented to the preview rig `armature_name`; returns the mesh object's name."""
    obj = get_armature(armature_name)
    bones = obj.data.bones
    absent = [j for j in JOINT_NAMES if j not in bones]
    if absent:
        raise RoundError(f"'{obj.name}' is not the SMPL preview rig (no bones {', '.join(absent[:3])}...); "
                         "use 'Create SMPL preview rig' and add the body to that")
    model = load_model(find_model_file(folder, gender))
    verts, faces, weights = model["v_template"], model["f"], model["weights"]
    if weights.shape[0] != len(verts) or weights.shape[1] < len(JOINT_NAMES):
        raise RoundError(f"SMPL model weights have shape {weights.shape}; expected ({len(verts)}, 24)")
    joints = model["J_regressor"] @ verts
    # SMPL is Y up, facing +Z; the rig is Z up, facing -Y. Put the model's pelvis on the rig's pelvis.
    offset = np.asarray(bones["pelvis"].head_local) - joints_to_blender(joints[:1])[0]
    points = joints_to_blender(verts) + offset

    mesh = bpy.data.meshes.new(f"{obj.name}_body")
    mesh.from_pydata(points.tolist(), [], faces.tolist())
    mesh.validate()
    mesh.update()
    body = bpy.data.objects.new(f"{obj.name}_body", mesh)
    for collection in obj.users_collection:
        collection.objects.link(body)
    body.parent = obj  # the rig's world matrix is the identity for the preview rig; keep the mesh in its space
    body.matrix_parent_inverse = obj.matrix_world.inverted()

    weights = weights.copy()
    for hand, wrist in HAND_TO_WRIST.items():
        if hand < weights.shape[1]:
            weights[:, wrist] += weights[:, hand]
    for j, name in enumerate(JOINT_NAMES):
        influenced = np.flatnonzero(weights[:, j] > 1e-6)
        group = body.vertex_groups.new(name=name)
        for v in influenced:  # one call per vertex; SMPL's 6890 vertices have about 4 joints each
            group.add([int(v)], float(weights[v, j]), "REPLACE")
    modifier = body.modifiers.new("Armature", "ARMATURE")
    modifier.object = obj
    modifier.use_vertex_groups = True
    return body.name
