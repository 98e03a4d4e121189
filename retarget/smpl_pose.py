"""Fitted SMPL pose parameters as the source of bone twist.

Joint positions fix where each bone points, not how it is turned about itself: a forearm's roll, a head
turn, a hand's orientation leave no trace in them. A motion that carries a fitted SMPL pose
(backend/body/fit.py) knows them. Here that pose becomes global rotations, and each bone keeps its twist
while its direction is still taken from the joints, so the positions stay exactly those of the joints.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from retarget.rotations import axis_angle_to_matrix, qbetween, quat_to_matrix
from retarget.skeleton import NUM_JOINTS, PARENTS, REST_JOINTS, joint_index

_J = joint_index
# Bones whose direction comes from one SMPL-22 child: (joint, child). Pelvis and spine3 are fixed by their three
# children already; wrists, head and toes have no child, so their whole rotation comes from the pose.
_CHAINS = tuple(
    (_J(j), _J(c)) for j, c in (
        ("spine1", "spine2"), ("spine2", "spine3"), ("neck", "head"),
        ("left_hip", "left_knee"), ("right_hip", "right_knee"), ("left_knee", "left_ankle"),
        ("right_knee", "right_ankle"), ("left_ankle", "left_foot"), ("right_ankle", "right_foot"),
        ("left_collar", "left_shoulder"), ("right_collar", "right_shoulder"),
        ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
        ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
    )
)
_LEAVES = tuple(_J(n) for n in ("head", "left_foot", "right_foot", "left_wrist", "right_wrist"))


def _pose_array(smpl_pose) -> np.ndarray:
    """Axis-angle (T, J, 3) with J >= 22 from the accepted spellings of an SMPL pose."""
    if isinstance(smpl_pose, Mapping):
        key = lambda name: name if name in smpl_pose else f"smpl_{name}"  # noqa: E731 - Motion.smpl or raw npz names
        if key("global_orient") not in smpl_pose or key("body_pose") not in smpl_pose:
            raise ValueError(f"smpl_pose needs global_orient and body_pose, got {', '.join(map(str, smpl_pose)) or 'nothing'}")
        orient = np.asarray(smpl_pose[key("global_orient")], dtype=np.float64)
        body = np.asarray(smpl_pose[key("body_pose")], dtype=np.float64)
        pose = np.concatenate([orient.reshape(len(orient), -1), body.reshape(len(body), -1)], axis=-1)
    else:
        pose = np.asarray(smpl_pose, dtype=np.float64)
    if pose.ndim == 2 and pose.shape[1] % 3 == 0:
        pose = pose.reshape(len(pose), -1, 3)
    if pose.ndim != 3 or pose.shape[2] != 3 or pose.shape[1] < NUM_JOINTS:
        raise ValueError(f"smpl_pose must be axis-angle (frames, 24, 3) or (frames, 72) (22 body joints at least), "
                         f"got shape {pose.shape}")
    return pose


def smpl_global_rotations(smpl_pose, frames: int) -> np.ndarray:
    """Global rotations (T, 22, 3, 3) of the SMPL body joints from a pose (see transfer.retarget's smpl_pose)."""
    pose = _pose_array(smpl_pose)
    if len(pose) != frames:
        raise ValueError(f"smpl_pose has {len(pose)} frames but the joints have {frames}")
    if not np.isfinite(pose).all():
        raise ValueError("smpl_pose must be finite numbers")
    local = axis_angle_to_matrix(pose[:, :NUM_JOINTS])
    glob = np.empty_like(local)
    glob[:, 0] = local[:, 0]
    for j in range(1, NUM_JOINTS):  # PARENTS is topologically ordered
        glob[:, j] = glob[:, PARENTS[j]] @ local[:, j]
    return glob


def twist_from_pose(estimated: np.ndarray, joints: np.ndarray, pose_global: np.ndarray) -> np.ndarray:
    """Global rotations (T, 22, 3, 3): each bone's twist from pose_global, its direction from the joints.

    For a bone from joint j to its child c the pose's rotation is turned by the smallest rotation that takes its
    rest bone onto the bone seen in the joints, which keeps the pose's turn about the bone itself. The fitted
    body's own bone directions may differ slightly (shape, fit error); the joints always win."""
    result = estimated.copy()
    chain, child = (np.array(x) for x in zip(*_CHAINS))
    rest = REST_JOINTS[child] - REST_JOINTS[chain]
    carried = (pose_global[:, chain] @ rest[..., None])[..., 0]
    seen = joints[:, child] - joints[:, chain]
    result[:, chain] = quat_to_matrix(qbetween(carried, seen)) @ pose_global[:, chain]
    result[:, list(_LEAVES)] = pose_global[:, list(_LEAVES)]
    return result
