"""The one motion file format: `.npz` with `joints` float32 (T, 22, 3) in metres (Y up, facing +Z) and `fps`.

Optional keys: `text` (the prompt or caption), `rounds` (the loop's rounds, stored as a JSON string plus
one `round{i}_joints` array per round, so the file never needs pickle to load) and fitted SMPL parameters
as `smpl_global_orient` (T,3), `smpl_body_pose` (T,69), `smpl_betas` (10,), `smpl_transl` (T,3).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retarget.skeleton import NUM_JOINTS, PARENTS

MIN_FRAMES = 2
MAX_FRAMES = 20 * 60 * 10  # ten minutes at 20 fps
MIN_FPS, MAX_FPS = 1.0, 240.0
DEFAULT_FPS = 20.0


class MotionFileError(ValueError):
    """A motion file or array that cannot be used; the message says what is wrong and what was expected."""


@dataclass
class MotionRound:
    joints: np.ndarray
    codes: list[int] = field(default_factory=list)
    assessment: str = ""
    instruction: str = ""
    final: bool = False
    error: str = ""


@dataclass
class Motion:
    joints: np.ndarray
    fps: float = DEFAULT_FPS
    text: str = ""
    rounds: list[MotionRound] = field(default_factory=list)
    smpl: dict[str, np.ndarray] = field(default_factory=dict)  # global_orient, body_pose, betas, transl

    def __post_init__(self) -> None:
        self.joints = validate_joints(self.joints)
        self.fps = validate_fps(self.fps)

    @property
    def frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def validate_joints(joints: np.ndarray, what: str = "joints") -> np.ndarray:
    """Return joints as float32 (T, 22, 3) or raise MotionFileError saying what is wrong."""
    arr = np.asarray(joints)
    if arr.dtype.kind not in "fiu":
        raise MotionFileError(f"{what} must hold numbers, got dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3):
        raise MotionFileError(
            f"{what} must have shape (frames, {NUM_JOINTS}, 3) (SMPL-22 joints in metres), got {arr.shape}"
        )
    frames = arr.shape[0]
    if frames < MIN_FRAMES:
        raise MotionFileError(f"{what} has {frames} frame(s); a motion needs at least {MIN_FRAMES}")
    if frames > MAX_FRAMES:
        raise MotionFileError(f"{what} has {frames} frames; at most {MAX_FRAMES} are supported")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise MotionFileError(
            f"{what} contains NaN or infinite values (first at frame {bad[0]}, joint {bad[1]}); "
            "clean the data before saving it"
        )
    bone = float(np.median(np.linalg.norm(arr[0, 1:] - arr[0, list(PARENTS[1:])], axis=-1)))
    if bone > 2.0:  # a human's median bone is ~0.15 m; centimetres or millimetres make it 100x larger
        raise MotionFileError(
            f"{what} has a median bone length of {bone:.1f}; joints must be in metres (centimetres? divide by 100)"
        )
    return arr.astype(np.float32, copy=False)


def validate_fps(fps: float) -> float:
    try:
        value = float(np.asarray(fps).reshape(()))
    except (TypeError, ValueError):
        raise MotionFileError(f"fps must be a single number, got {fps!r}") from None
    if not (MIN_FPS <= value <= MAX_FPS):
        raise MotionFileError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {value:g}")
    return value


def save_motion(path: str | Path, motion: Motion) -> Path:
    path = Path(path)
    if path.suffix != ".npz":
        raise MotionFileError(f"motion files end in .npz, got {path.name!r}")
    arrays: dict[str, np.ndarray] = {"joints": motion.joints, "fps": np.float32(motion.fps)}
    if motion.text:
        arrays["text"] = np.array(motion.text)
    if motion.rounds:
        meta = []
        for i, r in enumerate(motion.rounds):
            arrays[f"round{i}_joints"] = validate_joints(r.joints, f"round {i} joints")
            meta.append({"codes": [int(c) for c in r.codes], "assessment": r.assessment,
                         "instruction": r.instruction, "final": bool(r.final), "error": r.error})
        arrays["rounds"] = np.array(json.dumps(meta))
    for key, value in motion.smpl.items():
        arrays[f"smpl_{key}"] = np.asarray(value, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load_motion(path: str | Path) -> Motion:
    """Load and validate a motion file; every problem is a MotionFileError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MotionFileError(f"{path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # zip errors, truncated files, pickled object arrays
        raise MotionFileError(f"{path}: not a readable .npz motion file ({exc})") from None
    with data:
        if "joints" not in data.files:
            raise MotionFileError(f"{path}: missing the 'joints' array (found: {', '.join(data.files) or 'nothing'})")
        if "fps" not in data.files:
            raise MotionFileError(f"{path}: missing 'fps'; save the frame rate with the joints")
        try:
            joints = validate_joints(data["joints"])
            fps = validate_fps(data["fps"])
        except MotionFileError as exc:
            raise MotionFileError(f"{path}: {exc}") from None
        text = str(data["text"]) if "text" in data.files else ""
        rounds = []
        if "rounds" in data.files:
            for i, meta in enumerate(json.loads(str(data["rounds"]))):
                rounds.append(MotionRound(joints=validate_joints(data[f"round{i}_joints"], f"round {i} joints"), **meta))
        smpl = {name[len("smpl_"):]: data[name] for name in data.files if name.startswith("smpl_")}
    return Motion(joints=joints, fps=fps, text=text, rounds=rounds, smpl=smpl)
