"""Physical plausibility of one joint sequence (T, 22, 3), metres, Y up, floor at y = 0.

These are the acceptance figures of the corpus; `stats.py` sums them over a corpus folder.
"""
from __future__ import annotations

import numpy as np

from retarget.skeleton import bone_lengths, joint_index

FOOT_JOINTS = tuple(joint_index(n) for n in ("left_ankle", "right_ankle", "left_foot", "right_foot"))
STANCE_HEIGHT = 0.05    # a foot joint this close to the floor is in stance
SKATE_SPEED = 0.5       # m/s: a stance foot joint sliding faster than this skates
HINGE_MIN_BEND = np.radians(15)  # below this a knee or elbow counts as straight (its bend side is noise)

_L_HIP, _R_HIP = joint_index("left_hip"), joint_index("right_hip")
_LEGS = [(joint_index(f"{s}_hip"), joint_index(f"{s}_knee"), joint_index(f"{s}_ankle")) for s in ("left", "right")]
_ARMS = [(joint_index(f"{s}_shoulder"), joint_index(f"{s}_elbow"), joint_index(f"{s}_wrist"), sign)
         for s, sign in (("left", 1.0), ("right", -1.0))]
_CHEST, _NECK = joint_index("spine3"), joint_index("neck")
_L_COLLAR, _R_COLLAR = joint_index("left_collar"), joint_index("right_collar")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def bone_length_drift(joints: np.ndarray) -> float:
    """Largest change of any bone's length over the clip, metres."""
    lengths = bone_lengths(np.asarray(joints, np.float64))
    return float((lengths.max(0) - lengths.min(0)).max())


def floor_penetration(joints: np.ndarray, floor: float = 0.0) -> float:
    """How far the lowest foot joint ever goes below the floor, metres (0 when never)."""
    return float(max(0.0, floor - np.asarray(joints)[:, list(FOOT_JOINTS), 1].min()))


def foot_skating(joints: np.ndarray, fps: float, floor: float = 0.0) -> tuple[int, int]:
    """(skating, stance) foot-joint frames: stance = below STANCE_HEIGHT; skating = stance and sliding
    horizontally faster than SKATE_SPEED (speed from the frame to the next)."""
    feet = np.asarray(joints, np.float64)[:, list(FOOT_JOINTS)]
    stance = feet[:-1, :, 1] - floor < STANCE_HEIGHT
    speed = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=0), axis=-1) * fps
    return int((stance & (speed > SKATE_SPEED)).sum()), int(stance.sum())


def max_joint_step(joints: np.ndarray) -> float:
    """Largest distance any joint moves between consecutive frames, metres."""
    return float(np.linalg.norm(np.diff(np.asarray(joints, np.float64), axis=0), axis=-1).max())


def _bend(upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bend angle between two bones and the unit normal of the bend (upper x lower)."""
    cos = np.sum(_unit(upper) * _unit(lower), -1)
    return np.arccos(np.clip(cos, -1, 1)), _unit(np.cross(upper, lower))


def backward_knees(joints: np.ndarray) -> int:
    """Frames where a bent knee folds forward: its bend normal points to the body's right, not its left."""
    j = np.asarray(joints, np.float64)
    across = _unit(j[:, _L_HIP] - j[:, _R_HIP])
    bad = np.zeros(len(j), bool)
    for hip, knee, ankle in _LEGS:
        angle, normal = _bend(j[:, knee] - j[:, hip], j[:, ankle] - j[:, knee])
        bad |= (angle > HINGE_MIN_BEND) & (np.sum(normal * across, -1) < 0)
    return int(bad.sum())


def _swing(u: np.ndarray, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate v by the shortest rotation taking unit u to unit w (Rodrigues)."""
    k = np.cross(u, w)
    c = np.sum(u * w, -1, keepdims=True)
    return v * c + np.cross(k, v) + k * np.sum(k * v, -1, keepdims=True) / np.maximum(1 + c, 1e-6)


def backward_elbows(joints: np.ndarray) -> int:
    """Frames where a bent elbow folds backwards. The reference hinge is the rest-pose hinge (the forearm
    folding to the front) carried along by the shortest swing of the upper arm from its T-pose direction,
    measured in the chest frame; a bend against it by more than 90 degrees is a hyperextension."""
    j = np.asarray(joints, np.float64)
    x = _unit(j[:, _L_COLLAR] - j[:, _R_COLLAR])
    y = _unit(j[:, _NECK] - j[:, _CHEST])
    y = _unit(y - x * np.sum(x * y, -1, keepdims=True))
    chest = np.stack([x, y, np.cross(x, y)], -2)  # rows: chest axes in world
    bad = np.zeros(len(j), bool)
    for shoulder, elbow, wrist, sign in _ARMS:
        upper = np.einsum("tij,tj->ti", chest, j[:, elbow] - j[:, shoulder])
        lower = np.einsum("tij,tj->ti", chest, j[:, wrist] - j[:, elbow])
        angle, normal = _bend(upper, lower)
        rest_dir = np.broadcast_to([sign, 0.0, 0.0], upper.shape)
        hinge = _swing(rest_dir, _unit(upper), np.broadcast_to([0.0, -sign, 0.0], upper.shape))
        bad |= (angle > HINGE_MIN_BEND) & (np.sum(normal * hinge, -1) < 0)
    return int(bad.sum())
