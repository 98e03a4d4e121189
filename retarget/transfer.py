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

from dataclasses import dataclass, field

import numpy as np

from retarget import foot_lock, root_motion
from retarget.joints_to_rotations import joints_to_rotations
from retarget.smpl_pose import smpl_global_rotations, twist_from_pose
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
    warnings: list[str] = field(default_factory=list)  # things the animator should know (constraints on keyed bones)

    @property
    def frames(self) -> int:
        return int(self.rotations.shape[0])


_LEGS = (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle"))
_FOOT_JOINTS = ("left_ankle", "right_ankle", "left_foot", "right_foot")


class _Target:
    """Rest data of the target in world space, precomputed once per retarget."""

    def __init__(self, rig: RigDescription):
        self.rig = rig
        self.parents = np.asarray(rig.parents)
        self.scale = _uniform_scale(rig.world_matrix)
        rest_world = rig.rest_world()
        self.heads = rest_world[:, :3, 3]
        rot = rest_world[:, :3, :3] / self.scale
        u, _, vt = np.linalg.svd(rot)  # strip shear and rounding so Q is a true rotation
        self.rotations = u @ vt
        self.origin = rig.world_matrix[:3, 3].copy()
        count = len(rig.bone_names)
        # Rest rotation and head offset of each bone in the frame of the bone it follows (for posing) and of its
        # parent (for pose-bone values, which Blender applies relative to the parent).
        self.follow = np.asarray(rig.follow_parents())
        self.relative, self.offsets = self._relative_to(self.follow)
        copied = [b for b in range(count) if self.follow[b] != self.parents[b]]
        self.relative[copied], self.offsets[copied] = np.eye(3), 0.0  # a copied transform is the source's, exactly
        self.parent_relative, self.parent_offsets = self._relative_to(self.parents)
        # Bones grouped by depth: one batched step per level instead of one per bone (the 65-bone budget).
        depth = np.zeros(count, dtype=int)
        for b in rig.order(list(self.follow)):
            depth[b] = depth[self.follow[b]] + 1 if self.follow[b] >= 0 else 0
        self.levels = [np.flatnonzero(depth == d) for d in range(depth.max() + 1)]
        self.level_sets = [set(level.tolist()) for level in self.levels]

    def _relative_to(self, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        relative = np.repeat(np.eye(3)[None], len(parents), 0)
        offsets = np.zeros((len(parents), 3))
        has = parents >= 0
        p = parents[has]
        relative[has] = np.swapaxes(self.rotations[p], -1, -2) @ self.rotations[has]
        offsets[has] = (np.swapaxes(self.rotations[p], -1, -2) @ (self.heads[has] - self.heads[p])[..., None])[..., 0]
        return relative, offsets

    def descendants(self, bone: int) -> np.ndarray:
        """Indices of `bone` and every bone below it."""
        inside = np.zeros(len(self.parents), dtype=bool)
        inside[bone] = True
        for level in self.levels:
            inside[level] |= (self.follow[level] >= 0) & inside[np.maximum(self.follow[level], 0)]
        return np.flatnonzero(inside)

    def pose(self, world_rot: dict[int, np.ndarray], placed: dict[int, np.ndarray], frames: int):
        """World rotations (T, B, 3, 3) and heads (T, B, 3): bones in world_rot take those rotations, bones in
        placed take those head positions, every other bone follows its parent rigidly."""
        count = len(self.parents)
        rot = np.empty((count, frames, 3, 3))  # bone-major while building: each level gathers whole bones
        heads = np.empty((count, frames, 3))
        for i, level in enumerate(self.levels):
            if i == 0:
                rot[level] = self.rotations[level][:, None]
                heads[level] = self.heads[level][:, None]
            else:
                p = self.follow[level]
                parent_rot = rot[p]
                rot[level] = parent_rot @ self.relative[level][:, None]
                heads[level] = heads[p] + (parent_rot @ self.offsets[level][:, None, :, None])[..., 0]
            for b in self.level_sets[i] & world_rot.keys():
                rot[b] = world_rot[b]
            for b in self.level_sets[i] & placed.keys():
                heads[b] = placed[b]
        return rot.swapaxes(0, 1), heads.swapaxes(0, 1)

    def to_local(self, rot: np.ndarray, heads: np.ndarray, keyed: list[int], moved: list[int]):
        """Pose-bone quaternions (T, B, 4) and locations (T, B, 3) that reproduce rot and heads. Only the keyed
        bones (those given world rotations) turn; every other bone follows its parent, which is the identity."""
        frames, count = rot.shape[:2]
        keyed = np.asarray(sorted(keyed))
        parents = self.parents[keyed]
        has = parents >= 0
        rest_posed = np.broadcast_to(self.rotations[keyed], (frames, len(keyed), 3, 3)).copy()
        rest_posed[:, has] = rot[:, parents[has]] @ self.parent_relative[keyed[has]]
        rest_posed_t = np.swapaxes(rest_posed, -1, -2)
        quats = np.zeros((frames, count, 4))
        quats[..., 0] = 1.0
        quats[:, keyed] = qfix(matrix_to_quat(rest_posed_t @ rot[:, keyed]), axis=0)
        locations = np.zeros((frames, count, 3))
        for b in moved:
            k = int(np.searchsorted(keyed, b))
            p = self.parents[b]
            zero = heads[:, p] + (rot[:, p] @ self.parent_offsets[b][:, None])[..., 0] if p >= 0 else self.heads[b]
            locations[:, b] = (rest_posed_t[:, k] @ (heads[:, b] - zero)[..., None])[..., 0] / self.scale
        return quats, locations


def _uniform_scale(world_matrix: np.ndarray) -> float:
    """The armature object's scale, refused where Blender could not pose the rig rigidly (non-uniform, mirrored)."""
    axes = np.linalg.norm(world_matrix[:3, :3], axis=0)
    if axes.min() < 1e-9:
        raise ValueError("the armature object has zero scale")
    if axes.max() / axes.min() > 1.0 + 1e-4 or np.linalg.det(world_matrix[:3, :3]) < 0:
        shown = ", ".join(f"{v:g}" for v in np.round(axes * np.sign(np.linalg.det(world_matrix[:3, :3])), 4))
        raise ValueError(
            f"the armature object has a non-uniform or negative scale ({shown}): bones cannot turn without "
            "stretching. Apply it in Blender (select the armature, Ctrl+A > Scale) or give it one scale on all axes"
        )
    return float(np.cbrt(np.linalg.det(world_matrix[:3, :3])))


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
    joints: np.ndarray, rig: RigDescription, rig_map: RigMap, options: RetargetOptions | None = None, fps: float = 20.0,
    smpl_pose=None,
) -> BoneAnimation:
    """Pose-bone animation of `rig` playing the SMPL-22 joint positions (T, 22, 3) (metres, Y up, facing +Z).

    smpl_pose: fitted SMPL pose of the same frames, optional (axis-angle (T, 24, 3) or (T, 72), or a mapping
    with global_orient (T, 3) and body_pose (T, 69), as motion files carry it). Where given, each bone's twist
    comes from it instead of being estimated from neighbouring joints (forearm roll, head turn, hands).
    """
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
    glob = joints_to_rotations(joints)
    if smpl_pose is not None:
        glob = twist_from_pose(glob, joints, smpl_global_rotations(smpl_pose, frames))
    deltas = convert @ glob @ convert.T  # (T, 22, 3, 3) world rotations away from T-pose
    rest_mapped = {j: rig.index(rig_map.rest_bones.get(JOINT_NAMES[j], rig.bone_names[b])) for j, b in mapped.items()}
    align = rest_alignment(target, rest_mapped, tol=1e-3 * target_legs)
    followers = {rig.index(b): joint_index(j) for b, j in rig_map.followers.items()}
    js, bs = [*mapped, *followers.values()], [*mapped.values(), *followers]
    rest_to_world = np.stack([align[j] for j in js]) @ target.rotations[bs]
    world_rot = dict(zip(bs, np.moveaxis(deltas[:, js] @ rest_to_world, 1, 0)))

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
        heads[:, target.descendants(hips), 2] += lift  # a pure shift of the body: no need to pose again
    if options.foot_lock and options.root_mode != "in_place":  # in place, feet must slide: the world does not move
        locked = False
        for hip_j, knee_j, ankle_j in leg_idx:
            contact = foot_lock.detect_contacts(target.origin + scale * source[:, ankle_j], fps)
            locked |= _lock_leg(world_rot, heads, mapped[hip_j], mapped[knee_j], mapped[ankle_j], contact, fps)
        if locked:
            rot, heads = target.pose(world_rot, placed, frames)

    quats, locations = target.to_local(rot, heads, list(world_rot), moved)
    return BoneAnimation(bone_names=list(rig.bone_names), rotations=quats, locations=locations, fps=float(fps),
                         warnings=_constraint_warnings(rig, sorted(world_rot)))


def _constraint_warnings(rig: RigDescription, keyed: list[int]) -> list[str]:
    names = [(rig.bone_names[b], rig.constraints[rig.bone_names[b]]) for b in keyed if rig.bone_names[b] in rig.constraints]
    if not names:
        return []
    listed = ", ".join(f"{n!r} ({', '.join(kinds)})" for n, kinds in names)
    return [f"constraints on keyed bone(s) override the keys: {listed}; mute or remove them (Bone Constraints tab), "
            "or map the bones they follow instead"]


def _lock_leg(world_rot, heads, hip: int, knee: int, ankle: int, contact: np.ndarray, fps: float) -> bool:
    """Turn the thigh and shin (world rotations, in place) so the ankle holds its footprint during contacts;
    False where the leg has no contact."""
    goals, weights = foot_lock.lock_goals(heads[:, ankle], contact, fps)
    active = weights > 0
    if not active.any():
        return False
    h, k, a = heads[active, hip], heads[active, knee], heads[active, ankle]
    new_knee, new_ankle = foot_lock.two_bone_ik(h, k, a, goals[active])
    turn_thigh = quat_to_matrix(qbetween(k - h, new_knee - h))
    turn_shin = quat_to_matrix(qbetween((turn_thigh @ (a - k)[..., None])[..., 0], new_ankle - new_knee))
    thigh, shin = world_rot[hip].copy(), world_rot[knee].copy()
    thigh[active] = turn_thigh @ thigh[active]
    shin[active] = turn_shin @ turn_thigh @ shin[active]
    world_rot[hip], world_rot[knee] = thigh, shin
    return True


def pose_world(rig: RigDescription, anim: BoneAnimation) -> tuple[np.ndarray, np.ndarray]:
    """What Blender shows for `anim` on `rig`: world rotations (T, B, 3, 3) and heads (T, B, 3), by Blender's own
    rule pose = parent_pose @ parent_rest^-1 @ rest @ basis, where a bone that copies another (rig.copies) takes
    that bone's pose instead (used by tests and the benchmark)."""
    frames, count = anim.rotations.shape[:2]
    basis = np.zeros((frames, count, 4, 4))
    basis[..., :3, :3] = quat_to_matrix(anim.rotations)
    basis[..., :3, 3] = anim.locations
    basis[..., 3, 3] = 1.0
    rest = rig.rest_matrices
    follow = rig.follow_parents()
    pose = np.empty_like(basis)
    for b in rig.order(follow):
        p = rig.parents[b]
        if follow[b] != p:
            pose[:, b] = pose[:, follow[b]]
            continue
        local_rest = rest[b] if p < 0 else np.linalg.inv(rest[p]) @ rest[b]
        pose[:, b] = (local_rest if p < 0 else pose[:, p] @ local_rest) @ basis[:, b]
    world = rig.world_matrix @ pose
    scale = rig.world_scale()
    return world[..., :3, :3] / scale, world[..., :3, 3]
