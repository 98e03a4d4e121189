"""The SMPL 22-joint body skeleton in HumanML3D order, defined once for the whole project.

Coordinates are metres, Y up, the character facing +Z (SMPL's own frame). Rotations follow the SMPL
convention: the local rotation stored at joint j turns the bones that *leave* j (its children).
"""
from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

# HumanML3D's t2m_kinematic_chain: right leg, left leg, spine/head, right arm, left arm.
KINEMATIC_CHAIN: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20),
)

# HumanML3D's t2m_raw_offsets: the canonical unit direction of the bone ending at each joint, which the
# dataset's IK measures rotations from (arms point down here, unlike SMPL's T-pose).
RAW_OFFSETS = np.array(
    [[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0],
     [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1],
     [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0]],
    dtype=np.float64,
)

# Joint locations of the SMPL neutral body at mean shape in its rest T-pose (J_regressor @ v_template).
REST_JOINTS = np.array(
    [
        [-0.0018, -0.2233, 0.0282], [0.0695, -0.3141, 0.0239], [-0.0678, -0.3229, 0.0214],
        [-0.0043, -0.1143, -0.0015], [0.1022, -0.6898, 0.0169], [-0.1060, -0.6957, 0.0150],
        [0.0026, 0.0204, 0.0026], [0.0885, -1.0873, -0.0267], [-0.0920, -1.0949, -0.0273],
        [0.0023, 0.0737, 0.0282], [0.1194, -1.1437, 0.0922], [-0.1184, -1.1426, 0.0962],
        [-0.0002, 0.2887, -0.0150], [0.0782, 0.1949, -0.0049], [-0.0818, 0.1925, -0.0111],
        [0.0050, 0.3523, 0.0365], [0.1720, 0.2409, -0.0187], [-0.1737, 0.2359, -0.0194],
        [0.4320, 0.2130, -0.0424], [-0.4307, 0.2106, -0.0385], [0.6813, 0.2222, -0.0435],
        [-0.6882, 0.2204, -0.0440],
    ],
    dtype=np.float64,
)

# Common alternative spellings, so files from SMPL-X, AMASS or mocap tools resolve to our joints.
_ALIASES = {
    "hips": "pelvis", "root": "pelvis", "l_hip": "left_hip", "r_hip": "right_hip",
    "l_knee": "left_knee", "r_knee": "right_knee", "l_ankle": "left_ankle", "r_ankle": "right_ankle",
    "l_foot": "left_foot", "r_foot": "right_foot", "spine": "spine1", "spine_1": "spine1",
    "spine_2": "spine2", "spine_3": "spine3", "l_collar": "left_collar", "r_collar": "right_collar",
    "l_shoulder": "left_shoulder", "r_shoulder": "right_shoulder", "l_elbow": "left_elbow",
    "r_elbow": "right_elbow", "l_wrist": "left_wrist", "r_wrist": "right_wrist",
}


def children(joint: int) -> list[int]:
    return [j for j, p in enumerate(PARENTS) if p == joint]


def joint_index(name: str) -> int:
    """Index of a joint by name ('left_knee', 'L_Knee', 'l-knee' and the like); raises KeyError naming the choices."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    try:
        return JOINT_NAMES.index(key)
    except ValueError:
        raise KeyError(f"unknown SMPL-22 joint {name!r}; expected one of {', '.join(JOINT_NAMES)}") from None


def rest_offsets(rest_joints: np.ndarray = REST_JOINTS) -> np.ndarray:
    """Bone vectors joint - parent (root row: the root's rest position)."""
    offsets = rest_joints.copy()
    offsets[1:] = rest_joints[1:] - rest_joints[list(PARENTS[1:])]
    return offsets


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Lengths (..., 21) of the bones ending at joints 1..21, for any (..., 22, 3) array."""
    return np.linalg.norm(joints[..., 1:, :] - joints[..., list(PARENTS[1:]), :], axis=-1)


def forward_kinematics(
    local_rotations: np.ndarray,
    root_translation: np.ndarray,
    rest_joints: np.ndarray = REST_JOINTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions from local rotations, vectorised over frames.

    local_rotations: (T, 22, 3, 3) matrices relative to the parent (rest pose = identity).
    root_translation: (T, 3) position of the pelvis.
    Returns (positions (T, 22, 3), global rotations (T, 22, 3, 3)).
    """
    local_rotations = np.asarray(local_rotations, dtype=np.float64)
    if local_rotations.ndim != 4 or local_rotations.shape[1:] != (NUM_JOINTS, 3, 3):
        raise ValueError(f"local_rotations must have shape (T, 22, 3, 3), got {local_rotations.shape}")
    offsets = rest_offsets(np.asarray(rest_joints, dtype=np.float64))
    frames = local_rotations.shape[0]
    glob = np.empty_like(local_rotations)
    pos = np.empty((frames, NUM_JOINTS, 3))
    glob[:, 0] = local_rotations[:, 0]
    pos[:, 0] = root_translation
    for j in range(1, NUM_JOINTS):  # PARENTS is topologically ordered
        p = PARENTS[j]
        glob[:, j] = glob[:, p] @ local_rotations[:, j]
        pos[:, j] = pos[:, p] + glob[:, p] @ offsets[j]
    return pos, glob
