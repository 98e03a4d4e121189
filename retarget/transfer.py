"""SMPL-22 joint positions -> pose-bone rotations and locations of any armature.

The SMPL global rotations (joints_to_rotations) are turned into Blender's frame (the one Y-up to Z-up
conversion of the project lives here), then, per mapped target bone b playing SMPL joint j:

    posed world rotation   P_b = D_j  A_b  Q_b
    D_j = C G_j C^T         the joint's rotation away from the SMPL T-pose, in Blender world space
    A_b                     rest alignment: turns the target's rest bone (towards its mapped child) onto the
                            SMPL T-pose direction, so A-pose, T-pose and other rest poses all work
    Q_b                     the bone's rest rotation in world space (matrix_world @ matrix_local)

Unmapped bones keep their rest relative to their parent (P_b = P_p Q_p^T Q_b), so in-between bones ride
with their nearest mapped ancestor. Pose-bone rotations are then what Blender composes back into P:
r_b = (P_p Q_p^T Q_b)^T P_b. Because only rest matrices enter, any bone roll works.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retarget import foot_lock, root_motion
from retarget.joints_to_rotations import joints_to_rotations
from retarget.rig import RigDescription
from retarget.rigmaps import RigMap, check_rig_map
from retarget.rotations import frame_from_axes, matrix_to_quat, qbetween, qfix, quat_to_matrix, rigid_rotation
from retarget.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, REST_JOINTS, joint_index

# The one conversion between SMPL's frame (Y up, facing +Z) and Blender's (Z up, facing -Y): +90 degrees about X.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def joints_to_blender(joints: np.ndarray) -> np.ndarray:
    """Joint positions (..., 3) from SMPL's Y-up frame to Blender's Z-up frame."""
    return np.asarray(joints, dtype=np.float64) @ Y_UP_TO_Z_UP.T


@dataclass
class RetargetOptions:
    root_mode: str = "travel"   # "travel" | "in_place" | "root_bone"
    foot_lock: bool = True
    ground_snap: bool = True


@dataclass
class BoneAnimation:
    bone_names: list[str]
    rotations: np.ndarray       # (T, B, 4) pose-bone rotation_quaternion (w, x, y, z), relative to rest, per bone
    locations: np.ndarray       # (T, B, 3) pose-bone location (zero except the hips / root bone)
    fps: float

    @property
    def frames(self) -> int:
        return int(self.rotations.shape[0])


_LEGS = (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle"))
_FOOT_JOINTS = ("left_ankle", "right_ankle", "left_foot", "right_foot")


class _Target:
    """Rest data of the target in world space, precomputed once per retarget."""

    def __init__(self, rig: RigDescription):
        self.rig = rig
        self.order = rig.order()
        self.parents = rig.parents
        self.scale = rig.world_scale()
        if self.scale < 1e-9:
            raise ValueError("the armature object has zero scale")
        rest_world = rig.rest_world()
        self.heads = rest_world[:, :3, 3]
        rot = rest_world[:, :3, :3] / self.scale
        u, _, vt = np.linalg.svd(rot)  # strip shear and rounding so Q is a true rotation
        self.rotations = u @ vt
        self.origin = rig.world_matrix[:3, 3].copy()
        count = len(rig.bone_names)
        # Rest rotation and head offset of each bone in its parent's rest frame.
        self.relative = np.repeat(np.eye(3)[None], count, 0)
        self.offsets = np.zeros((count, 3))
        for b, p in enumerate(self.parents):
            if p >= 0:
                self.relative[b] = self.rotations[p].T @ self.rotations[b]
                self.offsets[b] = self.rotations[p].T @ (self.heads[b] - self.heads[p])

    def pose(self, world_rot: dict[int, np.ndarray], placed: dict[int, np.ndarray], frames: int):
        """World rotations (T, B, 3, 3) and heads (T, B, 3): bones in world_rot take those rotations, bones in
        placed take those head positions, every other bone follows its parent rigidly."""
        count = len(self.parents)
        rot = np.empty((frames, count, 3, 3))
        heads = np.empty((frames, count, 3))
        for b in self.order:
            p = self.parents[b]
            if b in world_rot:
                rot[:, b] = world_rot[b]
            elif p < 0:
                rot[:, b] = self.rotations[b]
            else:
                rot[:, b] = rot[:, p] @ self.relative[b]
            if b in placed:
                heads[:, b] = placed[b]
            elif p < 0:
                heads[:, b] = self.heads[b]
            else:
                heads[:, b] = heads[:, p] + rot[:, p] @ self.offsets[b]
        return rot, heads

    def to_local(self, rot: np.ndarray, heads: np.ndarray, moved: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Pose-bone rotation matrices (T, B, 3, 3) and locations (T, B, 3) that reproduce rot and heads."""
        frames, count = rot.shape[:2]
        local = np.empty_like(rot)
        locations = np.zeros((frames, count, 3))
        for b in range(count):
            p = self.parents[b]
            rest_posed = rot[:, p] @ self.relative[b] if p >= 0 else np.broadcast_to(self.rotations[b], rot[:, b].shape)
            local[:, b] = np.swapaxes(rest_posed, -1, -2) @ rot[:, b]
            if b in moved:
                zero = heads[:, p] + rot[:, p] @ self.offsets[b] if p >= 0 else self.heads[b]
                delta = (heads[:, b] - zero)[..., None]
                locations[:, b] = (np.swapaxes(rest_posed, -1, -2) @ delta)[..., 0] / self.scale
        return local, locations


def _mapped_descendants(joint: int, mapped: dict[int, int], heads: np.ndarray, bone: int, tol: float) -> list[int]:
    """Nearest SMPL descendants of `joint` that have a bone whose head is away from `bone`'s head."""
    found = []
    for child in (c for c, p in enumerate(PARENTS) if p == joint):
        if child in mapped and np.linalg.norm(heads[mapped[child]] - heads[bone]) > tol:
            found.append(child)
        else:
            found.extend(_mapped_descendants(child, mapped, heads, bone, tol))
    return found


def rest_alignment(target: _Target, mapped: dict[int, int], tol: float) -> dict[int, np.ndarray]:
    """Per mapped SMPL joint, the world rotation taking the target's rest pose of that bone onto SMPL's T-pose."""
    rest = joints_to_blender(REST_JOINTS)
    align: dict[int, np.ndarray] = {}
    for joint in range(NUM_JOINTS):  # parents come first
        if joint not in mapped:
            continue
        bone = mapped[joint]
        kids = _mapped_descendants(joint, mapped, target.heads, bone, tol)
        tgt = np.array([target.heads[mapped[k]] - target.heads[bone] for k in kids]).reshape(-1, 3)
        src = np.array([rest[k] - rest[joint] for k in kids]).reshape(-1, 3)
        tgt_dirs = tgt / np.linalg.norm(tgt, axis=-1, keepdims=True)
        src_dirs = src / np.linalg.norm(src, axis=-1, keepdims=True)
        central = [i for i, k in enumerate(kids) if not JOINT_NAMES[k].startswith(("left_", "right_"))]
        left = [i for i, k in enumerate(kids) if JOINT_NAMES[k].startswith("left_")]
        right = [i for i, k in enumerate(kids) if JOINT_NAMES[k].replace("right_", "left_", 1) in
                 [JOINT_NAMES[kids[x]] for x in left] and JOINT_NAMES[k].startswith("right_")]
        if central and left and right:
            # hips and chest: the spine exactly, the twist from the across-axis (L minus R child)
            c, l, r = central[0], left[0], right[0]
            align[joint] = frame_from_axes(src[c], src[l] - src[r]) @ frame_from_axes(tgt[c], tgt[l] - tgt[r]).T
        elif len(kids) > 1:
            align[joint] = rigid_rotation(tgt_dirs, src_dirs)
        elif len(kids):
            align[joint] = quat_to_matrix(qbetween(tgt[0], src[0]))
        else:
            ancestor = PARENTS[joint]
            while ancestor >= 0 and ancestor not in align:
                ancestor = PARENTS[ancestor]
            align[joint] = align[ancestor] if ancestor >= 0 else np.eye(3)
    return align


def _leg_length(positions: np.ndarray, legs: list[tuple[int, int, int]]) -> float:
    """Mean thigh + shin length over both legs; positions (..., N, 3) indexed by the tuples."""
    total = [np.linalg.norm(positions[..., k, :] - positions[..., h, :], axis=-1)
             + np.linalg.norm(positions[..., a, :] - positions[..., k, :], axis=-1) for h, k, a in legs]
    return float(np.median(np.mean(total, axis=0)))


def _root_bone(rig: RigDescription, rig_map: RigMap, hips: int) -> int:
    if rig_map.root and rig_map.root in rig.bone_names:
        root = rig.index(rig_map.root)
    else:
        root = hips
        while rig.parents[root] >= 0:
            root = rig.parents[root]
    if root == hips:
        raise ValueError(
            f"root mode 'root_bone' needs a root bone above the hips bone {rig.bone_names[hips]!r}; "
            "this rig has none (add one, or use root mode 'travel' or 'in_place')"
        )
    chain = hips
    while chain >= 0 and chain != root:
        chain = rig.parents[chain]
    if chain != root:
        raise ValueError(f"root bone {rig.bone_names[root]!r} is not an ancestor of the hips bone {rig.bone_names[hips]!r}")
    return root


def retarget(
    joints: np.ndarray, rig: RigDescription, rig_map: RigMap, options: RetargetOptions | None = None, fps: float = 20.0
) -> BoneAnimation:
    """Pose-bone animation of `rig` playing the SMPL-22 joint positions (T, 22, 3) (metres, Y up, facing +Z)."""
    options = options or RetargetOptions()
    if options.root_mode not in root_motion.ROOT_MODES:
        raise ValueError(f"unknown root mode {options.root_mode!r}; choose one of {', '.join(root_motion.ROOT_MODES)}")
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) < 1:
        raise ValueError(f"joints must have shape (frames, 22, 3), got {joints.shape}")
    if not np.isfinite(joints).all() or not fps > 0:
        raise ValueError("joints must be finite numbers and fps positive")
    check_rig_map(rig_map, rig.bone_names)
    frames = len(joints)
    target = _Target(rig)
    mapped = {joint_index(j): rig.index(b) for j, b in rig_map.bones.items()}
    hips = mapped[0]
    leg_idx = [tuple(joint_index(n) for n in leg) for leg in _LEGS]
    target_legs = _leg_length(target.heads, [tuple(mapped[j] for j in leg) for leg in leg_idx])

    source = joints_to_blender(joints)
    convert = Y_UP_TO_Z_UP
    deltas = convert @ joints_to_rotations(joints) @ convert.T  # (T, 22, 3, 3) world rotations away from T-pose
    align = rest_alignment(target, mapped, tol=1e-3 * target_legs)
    world_rot = {b: deltas[:, j] @ (align[j] @ target.rotations[b]) for j, b in mapped.items()}

    scale = root_motion.leg_length_scale(_leg_length(source, leg_idx), target_legs)
    pelvis = scale * source[:, 0]
    if options.root_mode == "in_place":
        pelvis = root_motion.in_place(pelvis, fps)
    placed = {hips: target.origin + pelvis}
    moved = [hips]
    if options.root_mode == "root_bone":
        root = _root_bone(rig, rig_map, hips)
        yaw = root_motion.yaw_matrices(root_motion.heading_yaw(deltas[:, 0], fps))
        path = np.zeros((frames, 3))
        path[:, :2] = root_motion.travel_path(pelvis, fps)
        world_rot[root] = yaw @ target.rotations[root]
        placed[root] = target.origin + path + (yaw @ (target.heads[root] - target.origin))
        moved.append(root)

    rot, heads = target.pose(world_rot, placed, frames)
    if options.ground_snap:
        feet = [mapped[joint_index(n)] for n in _FOOT_JOINTS if joint_index(n) in mapped]
        lift = root_motion.ground_offset(heads[:, feet, 2], target.heads[feet, 2])
        placed[hips] = placed[hips] + np.array([0.0, 0.0, lift])
        rot, heads = target.pose(world_rot, placed, frames)
    if options.foot_lock and options.root_mode != "in_place":  # in place, feet must slide: the world does not move
        for hip_j, knee_j, ankle_j in leg_idx:
            contact = foot_lock.detect_contacts(target.origin + scale * source[:, ankle_j], fps)
            _lock_leg(world_rot, heads, mapped[hip_j], mapped[knee_j], mapped[ankle_j], contact, fps)
        rot, heads = target.pose(world_rot, placed, frames)

    local, locations = target.to_local(rot, heads, moved)
    return BoneAnimation(
        bone_names=list(rig.bone_names), rotations=qfix(matrix_to_quat(local), axis=0), locations=locations, fps=float(fps)
    )


def _lock_leg(world_rot, heads, hip: int, knee: int, ankle: int, contact: np.ndarray, fps: float) -> None:
    """Turn the thigh and shin (world rotations, in place) so the ankle holds its footprint during contacts."""
    goals, weights = foot_lock.lock_goals(heads[:, ankle], contact, fps)
    active = weights > 0
    if not active.any():
        return
    h, k, a = heads[active, hip], heads[active, knee], heads[active, ankle]
    new_knee, new_ankle = foot_lock.two_bone_ik(h, k, a, goals[active])
    turn_thigh = quat_to_matrix(qbetween(k - h, new_knee - h))
    turn_shin = quat_to_matrix(qbetween((turn_thigh @ (a - k)[..., None])[..., 0], new_ankle - new_knee))
    thigh, shin = world_rot[hip].copy(), world_rot[knee].copy()
    thigh[active] = turn_thigh @ thigh[active]
    shin[active] = turn_shin @ turn_thigh @ shin[active]
    world_rot[hip], world_rot[knee] = thigh, shin


def pose_world(rig: RigDescription, anim: BoneAnimation) -> tuple[np.ndarray, np.ndarray]:
    """What Blender shows for `anim` on `rig`: world rotations (T, B, 3, 3) and heads (T, B, 3), by Blender's own
    rule pose = parent_pose @ parent_rest^-1 @ rest @ basis (used by tests and the benchmark)."""
    frames, count = anim.rotations.shape[:2]
    basis = np.zeros((frames, count, 4, 4))
    basis[..., :3, :3] = quat_to_matrix(anim.rotations)
    basis[..., :3, 3] = anim.locations
    basis[..., 3, 3] = 1.0
    rest = rig.rest_matrices
    pose = np.empty_like(basis)
    for b in rig.order():
        p = rig.parents[b]
        local_rest = rest[b] if p < 0 else np.linalg.inv(rest[p]) @ rest[b]
        pose[:, b] = (local_rest if p < 0 else pose[:, p] @ local_rest) @ basis[:, b]
    world = rig.world_matrix @ pose
    scale = rig.world_scale()
    return world[..., :3, :3] / scale, world[..., :3, 3]

