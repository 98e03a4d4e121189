"""Joint positions -> per-bone rotations of the SMPL-22 skeleton (inverse kinematics without optimisation).

Each joint's global rotation takes its rest bone direction (REST_JOINTS, T-pose) onto the direction seen
in the frame (swing); the turn about the bone itself (twist) comes from neighbouring joints:
- pelvis and spine3 (three children each): the best rigid fit of their children (across the hips, across
  the shoulders, up the spine);
- spine1, spine2: swing plus the across-axis blended between the hips and the shoulders;
- thigh, shin, upper arm, forearm: the knee or elbow hinge (the plane of the limb) where the limb is bent,
  fading to the parent's twist as it straightens (a straight limb defines no plane);
- collars, neck, ankles: the smallest turn relative to the parent (nothing else defines their twist);
- wrists, head and toes (leaves): the parent's rotation.
Every ingredient is continuous in time, so the rotations carry no sign or 180-degree flips.
"""
from __future__ import annotations

import numpy as np

from retarget.rotations import frame_from_axes, qbetween, quat_to_matrix, rigid_rotation
from retarget.skeleton import NUM_JOINTS, PARENTS, REST_JOINTS, joint_index

_J = joint_index
# (upper joint, lower joint, end joint, rest flexion direction of the lower bone) for the four hinged limbs.
_LIMBS = (
    (_J("left_hip"), _J("left_knee"), _J("left_ankle"), (0.0, 0.0, -1.0)),    # knees bend the shin backwards
    (_J("right_hip"), _J("right_knee"), _J("right_ankle"), (0.0, 0.0, -1.0)),
    (_J("left_shoulder"), _J("left_elbow"), _J("left_wrist"), (0.0, 0.0, 1.0)),  # elbows bend the forearm forwards
    (_J("right_shoulder"), _J("right_elbow"), _J("right_wrist"), (0.0, 0.0, 1.0)),
)
# Bend (sine of the angle between the two limb bones) over which the hinge takes over from the parent's twist.
_HINGE_FADE = (0.15, 0.35)
# The flexion is measured from the unflexed lower bone, whose place depends on the twist being solved: two
# fixed-point passes make the rest kink of SMPL's limbs (5-10 degrees) negligible.
_HINGE_PASSES = 2
_EPS = 1e-9


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def _swing(parent_rotation: np.ndarray, rest_dir: np.ndarray, current_dir: np.ndarray) -> np.ndarray:
    """The parent's rotation followed by the shortest turn taking the carried rest direction onto the current one."""
    carried = parent_rotation @ rest_dir
    return quat_to_matrix(qbetween(carried, current_dir)) @ parent_rotation


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def joints_to_rotations(joints: np.ndarray, rest_joints: np.ndarray = REST_JOINTS) -> np.ndarray:
    """Global rotations (T, 22, 3, 3) of the SMPL bones (SMPL frame: Y up, facing +Z) for joints (T, 22, 3).

    Applying them with skeleton.forward_kinematics (after global_to_local) from the pelvis position
    reproduces the joints exactly when the motion keeps the rest skeleton's bone lengths.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape (frames, 22, 3), got {joints.shape}")
    rest = np.asarray(rest_joints, dtype=np.float64)
    frames = joints.shape[0]
    bone = lambda j, c: joints[:, c] - joints[:, j]  # noqa: E731 - current vector from joint j to joint c
    rest_bone = lambda j, c: rest[c] - rest[j]  # noqa: E731
    glob = np.zeros((frames, NUM_JOINTS, 3, 3))

    for joint in (_J("pelvis"), _J("spine3")):
        kids = [c for c, p in enumerate(PARENTS) if p == joint]
        rest_dirs = _normalize(np.stack([rest_bone(joint, c) for c in kids]))
        glob[:, joint] = rigid_rotation(rest_dirs, _normalize(np.stack([bone(joint, c) for c in kids], axis=1)))

    # Spine segments: swing onto the spine, twist blended from the hips' across-axis to the shoulders'.
    x_axis = np.array([1.0, 0.0, 0.0])
    for joint, child, blend in ((_J("spine1"), _J("spine2"), 1 / 3), (_J("spine2"), _J("spine3"), 2 / 3)):
        across = (1 - blend) * glob[:, 0] @ x_axis + blend * glob[:, _J("spine3")] @ x_axis
        current = frame_from_axes(bone(joint, child), across)
        at_rest = frame_from_axes(rest_bone(joint, child), x_axis)
        glob[:, joint] = current @ at_rest.T

    for joint, child in ((_J("neck"), _J("head")), (_J("left_collar"), _J("left_shoulder")),
                         (_J("right_collar"), _J("right_shoulder"))):
        glob[:, joint] = _swing(glob[:, PARENTS[joint]], rest_bone(joint, child), bone(joint, child))

    for upper, lower, end, flex in _LIMBS:
        rest_upper, rest_lower = rest_bone(upper, lower), rest_bone(lower, end)
        rest_hinge = _normalize(np.cross(rest_lower, np.asarray(flex)))
        rest_upper_frame = frame_from_axes(rest_upper, rest_hinge)
        kink = rest_upper_frame.T @ _normalize(rest_lower)  # the rest limb is not straight: its lower bone in upper's frame
        cur_upper, cur_lower = bone(upper, lower), bone(lower, end)
        inherited_axis = _swing(glob[:, PARENTS[upper]], rest_upper, cur_upper) @ rest_hinge
        axis = inherited_axis
        for _ in range(_HINGE_PASSES):
            # flexion = the turn from where the lower bone would point unflexed to where it points
            unflexed = frame_from_axes(cur_upper, axis) @ kink
            hinge_raw = np.cross(unflexed, _normalize(cur_lower))
            weight = _smoothstep(np.linalg.norm(hinge_raw, axis=-1), *_HINGE_FADE)[:, None]
            blended = weight * _normalize(hinge_raw) + (1 - weight) * inherited_axis
            # where hinge and inherited axis nearly cancel, keep the inherited twist
            axis = np.where(np.linalg.norm(blended, axis=-1, keepdims=True) < 1e-3, inherited_axis, blended)
        glob[:, upper] = frame_from_axes(cur_upper, axis) @ rest_upper_frame.T
        glob[:, lower] = frame_from_axes(cur_lower, axis) @ frame_from_axes(rest_lower, rest_hinge).T

    for ankle, toe in ((_J("left_ankle"), _J("left_foot")), (_J("right_ankle"), _J("right_foot"))):
        glob[:, ankle] = _swing(glob[:, PARENTS[ankle]], rest_bone(ankle, toe), bone(ankle, toe))

    for leaf in (_J("head"), _J("left_foot"), _J("right_foot"), _J("left_wrist"), _J("right_wrist")):
        glob[:, leaf] = glob[:, PARENTS[leaf]]
    return glob


def global_to_local(global_rotations: np.ndarray) -> np.ndarray:
    """Parent-relative rotations (T, 22, 3, 3) as skeleton.forward_kinematics takes them."""
    local = global_rotations.copy()
    parents = list(PARENTS[1:])
    local[:, 1:] = np.swapaxes(global_rotations[:, parents], -1, -2) @ global_rotations[:, 1:]
    return local

