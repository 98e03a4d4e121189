"""HumanML3D motion features: joints (T, J, 3) <-> the 263-d (KIT: 251-d) vectors of `new_joint_vecs`.

`extract_features` reproduces the dataset's `process_file`: scale to the reference skeleton, put the
lowest point on the floor, move the first root to the XZ origin, turn to face +Z, then derive the
rotation-invariant root-relative positions (RIC), cont6d rotations from IK, local velocities and foot
contacts. `recover_from_ric` inverts the root and RIC channels exactly; so extraction followed by
recovery returns the processed joints up to float rounding. The dataset's quirks are kept on purpose
(they are what released models were trained on): the IK facing vector mixes the hip and shoulder
directions with opposite signs, its first root rotation is forced to identity, and the root yaw
velocity stores half angles (arcsin of the quaternion's y). The one fix is noted where it is made.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retarget import rotations as R
from retarget.skeleton import REST_JOINTS

from .spec import T2M, FeatureSpec

_UP = np.array([0.0, 1.0, 0.0])


def gaussian_filter1d(x: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage.gaussian_filter1d along axis 0 with mode='nearest', in plain numpy."""
    radius = int(truncate * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.concatenate([np.repeat(x[:1], radius, 0), x, np.repeat(x[-1:], radius, 0)], axis=0)
    out = np.zeros_like(x, dtype=np.float64)
    for k, w in enumerate(kernel):
        out += w * padded[k : k + len(x)]
    return out


def offsets_from_joints(joints: np.ndarray, spec: FeatureSpec = T2M) -> np.ndarray:
    """Bone vectors of the dataset's skeleton: length of each bone times its raw rest direction."""
    parents = spec.parents
    offsets = np.zeros((spec.joints_num, 3))
    for j in range(1, spec.joints_num):
        offsets[j] = np.linalg.norm(joints[j] - joints[parents[j]]) * spec.raw_offsets[j]
    return offsets


def default_target_offsets(spec: FeatureSpec = T2M) -> np.ndarray:
    """The skeleton every motion is scaled to. HumanML3D uses sample 000021, which cannot ship here; the
    SMPL neutral mean shape stands in for it (its bone lengths differ from 000021's by a few mm)."""
    if spec.joints_num != REST_JOINTS.shape[0]:
        raise ValueError(f"no built-in reference skeleton for {spec.name}; pass target_offsets from a {spec.target_skeleton} sample")
    return offsets_from_joints(REST_JOINTS, spec)


def _facing_rotation(across: np.ndarray, smooth: bool) -> np.ndarray:
    """Yaw quaternions turning the facing direction (up x across) to +Z."""
    across = across / np.linalg.norm(across, axis=-1, keepdims=True)
    forward = R.cross(np.broadcast_to(_UP, across.shape), across)
    if smooth:
        forward = gaussian_filter1d(forward, 20)
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    return R.qbetween(forward, np.broadcast_to([0.0, 0.0, 1.0], forward.shape))


def inverse_kinematics(joints: np.ndarray, spec: FeatureSpec = T2M, smooth_forward: bool = False) -> np.ndarray:
    """Dataset-convention IK: per-joint quaternions (T, J, 4) where joint j's rotation swings the bone
    parent->j from its raw direction; the root carries the facing yaw (identity at frame 0)."""
    # The dataset unpacks face_joints as (l_hip, r_hip, sdr_r, sdr_l) here, unlike in process_file.
    l_hip, r_hip, sdr_r, sdr_l = spec.face_joints
    across = (joints[:, r_hip] - joints[:, l_hip]) + (joints[:, sdr_r] - joints[:, sdr_l])
    root = _facing_rotation(across, smooth_forward)
    root[0] = [1.0, 0.0, 0.0, 0.0]
    quats = np.zeros(joints.shape[:-1] + (4,))
    quats[..., 0] = 1.0
    quats[:, 0] = root
    for chain in spec.kinematic_chain:
        acc = root
        for a, b in zip(chain[:-1], chain[1:]):
            u = np.broadcast_to(spec.raw_offsets[b], (len(joints), 3))
            v = joints[:, b] - joints[:, a]
            v = v / np.linalg.norm(v, axis=-1, keepdims=True)
            local = R.qmul(R.qinv(acc), R.qbetween(u, v))
            quats[:, b] = local
            acc = R.qmul(acc, local)
    return quats


def forward_kinematics(quats: np.ndarray, root_pos: np.ndarray, offsets: np.ndarray, spec: FeatureSpec = T2M) -> np.ndarray:
    """Dataset-convention FK, the inverse of `inverse_kinematics` for a skeleton with `offsets`."""
    joints = np.zeros(quats.shape[:-1] + (3,))
    joints[:, 0] = root_pos
    for chain in spec.kinematic_chain:
        acc = quats[:, 0]
        for a, b in zip(chain[:-1], chain[1:]):
            acc = R.qmul(acc, quats[:, b])
            joints[:, b] = R.qrot(acc, np.broadcast_to(offsets[b], (len(quats), 3))) + joints[:, a]
    return joints


def uniform_skeleton(joints: np.ndarray, target_offsets: np.ndarray, spec: FeatureSpec = T2M) -> np.ndarray:
    """Give the motion the reference skeleton's bone lengths, keeping every bone's direction; the root
    path is scaled by the ratio of leg lengths."""
    parents = spec.parents
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, parents[1:]], axis=-1)
    if np.abs(lengths - np.linalg.norm(target_offsets[1:], axis=-1)).max() < 1e-7:
        return joints.copy()  # already the reference skeleton (e.g. our corpus): IK + FK would return it unchanged
    src_offsets = offsets_from_joints(joints[0], spec)
    l1, l2 = spec.leg_joints
    src_leg = np.abs(src_offsets[l1]).max() + np.abs(src_offsets[l2]).max()
    tgt_leg = np.abs(target_offsets[l1]).max() + np.abs(target_offsets[l2]).max()
    quats = inverse_kinematics(joints, spec)
    return forward_kinematics(quats, joints[:, 0] * (tgt_leg / src_leg), target_offsets, spec)


@dataclass
class ExtractedMotion:
    features: np.ndarray   # (T-1, dim) float32
    positions: np.ndarray  # (T, J, 3) float32: the processed joints the features describe
    foot_contact: np.ndarray  # (T-1, 4) float32: left heel, left toe, right heel, right toe


def check_joint_array(joints: np.ndarray, spec: FeatureSpec = T2M) -> np.ndarray:
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (spec.joints_num, 3):
        raise ValueError(f"joints must have shape (frames, {spec.joints_num}, 3) for {spec.name}, got {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"features need at least 2 frames (they are built from frame differences), got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise ValueError("joints contain NaN or infinite values")
    return arr


def extract_features(
    joints: np.ndarray,
    spec: FeatureSpec = T2M,
    target_offsets: np.ndarray | None = None,
    feet_threshold: float | None = None,
) -> ExtractedMotion:
    """HumanML3D `process_file`: joints (T, J, 3) in metres, Y up -> features (T-1, dim)."""
    positions = check_joint_array(joints, spec)
    if target_offsets is None:
        target_offsets = default_target_offsets(spec)
    thres = spec.feet_threshold if feet_threshold is None else feet_threshold

    positions = uniform_skeleton(positions, target_offsets, spec)
    positions[:, :, 1] -= positions[:, :, 1].min()
    positions = positions - positions[0, 0] * np.array([1.0, 0.0, 1.0])

    r_hip, l_hip, sdr_r, sdr_l = spec.face_joints
    first = positions[0]
    across = (first[r_hip] - first[l_hip]) + (first[sdr_r] - first[sdr_l])
    face = _facing_rotation(across[None], smooth=False)[0]
    positions = R.qrot(np.broadcast_to(face, positions.shape[:-1] + (4,)), positions)
    global_positions = positions.copy()

    def planted(ids: tuple[int, int]) -> np.ndarray:
        disp = ((positions[1:, list(ids)] - positions[:-1, list(ids)]) ** 2).sum(-1)
        return (disp < thres).astype(np.float64)

    feet_l, feet_r = planted(spec.foot_left), planted(spec.foot_right)

    quats = inverse_kinematics(positions, spec, smooth_forward=True)
    cont6d = R.quat_to_cont6d(quats)
    # One departure from the dataset: keep the root quaternions in one hemisphere. Otherwise, when the
    # heading crosses 180 degrees, the yaw velocity (arcsin of q.y) gets the wrong sign and
    # recover_from_ric drifts; HumanML3D's own features carry that error on such frames.
    r_rot = R.qfix(quats[:, 0])
    velocity = R.qrot(r_rot[1:], positions[1:, 0] - positions[:-1, 0])
    r_velocity = R.qmul(r_rot[1:], R.qinv(r_rot[:-1]))

    ric = positions.copy()
    ric[..., 0] -= ric[:, 0:1, 0]
    ric[..., 2] -= ric[:, 0:1, 2]
    ric = R.qrot(np.broadcast_to(r_rot[:, None], ric.shape[:-1] + (4,)), ric)

    frames = len(positions)
    root_data = np.concatenate(
        [np.arcsin(np.clip(r_velocity[:, 2:3], -1, 1)), velocity[:, [0, 2]], ric[:-1, 0, 1:2]], axis=-1
    )
    local_vel = R.qrot(
        np.broadcast_to(r_rot[:-1, None], (frames - 1, spec.joints_num, 4)),
        global_positions[1:] - global_positions[:-1],
    )
    data = np.concatenate(
        [
            root_data,
            ric[:-1, 1:].reshape(frames - 1, -1),
            cont6d[:-1, 1:].reshape(frames - 1, -1),
            local_vel.reshape(frames - 1, -1),
            feet_l,
            feet_r,
        ],
        axis=-1,
    )
    assert data.shape[1] == spec.dim
    return ExtractedMotion(
        features=data.astype(np.float32),
        positions=global_positions.astype(np.float32),
        foot_contact=np.concatenate([feet_l, feet_r], -1).astype(np.float32),
    )


def check_feature_array(features: np.ndarray, spec: FeatureSpec | None = None) -> tuple[np.ndarray, FeatureSpec]:
    from .spec import spec_for_dim

    arr = np.asarray(features)
    if arr.ndim < 2:
        raise ValueError(f"features must have shape (frames, dim), got {arr.shape}")
    spec = spec or spec_for_dim(arr.shape[-1])
    if arr.shape[-1] != spec.dim:
        raise ValueError(f"{spec.name} features are {spec.dim}-d, got {arr.shape[-1]}-d")
    if not np.isfinite(arr).all():
        raise ValueError("features contain NaN or infinite values")
    return arr, spec


def recover_root_rot_pos(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integrate the root channels: yaw quaternions (..., T, 4) and root positions (..., T, 3)."""
    angle = np.zeros(data.shape[:-1])
    angle[..., 1:] = data[..., :-1, 0]
    angle = np.cumsum(angle, axis=-1)
    quat = np.zeros(data.shape[:-1] + (4,))
    quat[..., 0] = np.cos(angle)
    quat[..., 2] = np.sin(angle)
    pos = np.zeros(data.shape[:-1] + (3,))
    pos[..., 1:, 0] = data[..., :-1, 1]
    pos[..., 1:, 2] = data[..., :-1, 2]
    pos = np.cumsum(R.qrot(R.qinv(quat), pos), axis=-2)
    pos[..., 1] = data[..., 3]
    return quat, pos


def recover_from_ric(features: np.ndarray, joints_num: int | None = None) -> np.ndarray:
    """Features (..., T, dim) -> joints (..., T, J, 3), from the root and RIC channels (as the dataset does)."""
    data, spec = check_feature_array(features)
    joints_num = joints_num or spec.joints_num
    data = data.astype(np.float64)
    quat, root = recover_root_rot_pos(data)
    ric = data[..., 4 : 4 + (joints_num - 1) * 3].reshape(data.shape[:-1] + (joints_num - 1, 3))
    ric = R.qrot(np.broadcast_to(R.qinv(quat)[..., None, :], ric.shape[:-1] + (4,)), ric)
    ric[..., 0] += root[..., None, 0]
    ric[..., 2] += root[..., None, 2]
    return np.concatenate([root[..., None, :], ric], axis=-2).astype(np.float32)
