"""A target armature as plain numpy data: what the transfer needs to know about a rig, nothing from bpy."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RigDescription:
    bone_names: list[str]
    parents: list[int]           # index of each bone's parent, -1 for roots
    rest_matrices: np.ndarray    # (B, 4, 4) bone rest matrices in armature space (Blender's bone.matrix_local, Z up)
    world_matrix: np.ndarray     # (4, 4) the armature object's matrix_world
    # bone name -> kinds of its active constraints (Blender evaluates them after the keys, so they win)
    constraints: dict[str, list[str]] = field(default_factory=dict)
    # bone name -> the bone whose world transform a Copy Transforms constraint gives it (Rigify's ORG bones follow
    # its controls this way): such a bone moves with that bone, not with its parent
    copies: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bone_names = list(self.bone_names)
        seen: set[str] = set()
        twice = sorted({n for n in self.bone_names if n in seen or seen.add(n)})
        if twice:
            raise ValueError(f"the rig has several bones named {', '.join(map(repr, twice))}; bone names must be unique")
        self.parents = [int(p) for p in self.parents]
        self.rest_matrices = np.asarray(self.rest_matrices, dtype=np.float64)
        self.world_matrix = np.asarray(self.world_matrix, dtype=np.float64)
        count = len(self.bone_names)
        if len(self.parents) != count or self.rest_matrices.shape != (count, 4, 4):
            raise ValueError(
                f"rig description mismatch: {count} bone names, {len(self.parents)} parents, "
                f"rest matrices of shape {self.rest_matrices.shape}"
            )
        if self.world_matrix.shape != (4, 4):
            raise ValueError(f"world_matrix must be 4x4, got {self.world_matrix.shape}")
        if any(p < -1 or p >= count for p in self.parents):
            raise ValueError("rig description: a parent index is out of range")

    def follow_parents(self) -> list[int]:
        """Per bone, the bone it moves with: the bone it copies where it copies one, else its parent. A copy that
        would make a bone follow itself (a cycle) is ignored."""
        follow = list(self.parents)
        for name, source in self.copies.items():
            if name not in self.bone_names or source not in self.bone_names:
                continue
            b, s = self.bone_names.index(name), self.bone_names.index(source)
            chain, x = set(), s
            while x != -1 and x not in chain and x != b:
                chain.add(x)
                x = follow[x]
            if x == -1:
                follow[b] = s
        return follow

    def index(self, name: str) -> int:
        try:
            return self.bone_names.index(name)
        except ValueError:
            raise KeyError(f"the rig has no bone named {name!r}") from None

    def order(self, parents: list[int] | None = None) -> list[int]:
        """Bone indices with every parent before its children (Blender does not promise that order)."""
        parents = self.parents if parents is None else parents
        done: set[int] = set()
        result: list[int] = []
        for start in range(len(self.bone_names)):
            chain = []
            b = start
            while b != -1 and b not in done:
                chain.append(b)
                b = parents[b]
                if len(chain) > len(self.bone_names):
                    raise ValueError("rig description: the bone parents form a cycle")
            for b in reversed(chain):
                done.add(b)
                result.append(b)
        return result

    def rest_world(self) -> np.ndarray:
        """(B, 4, 4) rest matrices in world space (may carry the object's scale)."""
        return self.world_matrix @ self.rest_matrices

    def rest_heads_world(self) -> np.ndarray:
        return self.rest_world()[:, :3, 3]

    def world_scale(self) -> float:
        """Uniform scale of the armature object (Mixamo FBX armatures carry 0.01)."""
        return float(np.cbrt(abs(np.linalg.det(self.world_matrix[:3, :3]))))


# ---------------------------------------------------------------------------------------------------------
# Reference rigs: bone layouts of the preset families, built on the SMPL rest skeleton so tests and the CLI
# have real targets without shipping model files. blender_io.build_preset_rig turns them into armatures.

@dataclass
class BoneSpec:
    name: str
    parent: str          # "" for a root bone
    head: np.ndarray     # armature space
    tail: np.ndarray
    roll: float = 0.0    # radians, as Blender's EditBone.roll


def bone_matrix(head: np.ndarray, tail: np.ndarray, roll: float) -> np.ndarray:
    """A 4x4 bone rest matrix with +Y along head->tail and `roll` about it (Blender's convention up to the
    choice of zero roll, which the retargeter never relies on)."""
    from retarget.rotations import qbetween, quat_to_matrix

    direction = np.asarray(tail, dtype=np.float64) - np.asarray(head, dtype=np.float64)
    direction /= np.linalg.norm(direction)
    y = np.array([0.0, 1.0, 0.0])
    if direction @ y < -1 + 1e-9:
        swing = np.diag([-1.0, -1.0, 1.0])
    else:
        swing = quat_to_matrix(qbetween(y, direction))
    c, s = np.cos(roll), np.sin(roll)
    roll_y = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    m = np.eye(4)
    m[:3, :3] = swing @ roll_y
    m[:3, 3] = head
    return m


def rig_from_bones(bones: list[BoneSpec], world_matrix: np.ndarray | None = None) -> RigDescription:
    names = [b.name for b in bones]
    return RigDescription(
        bone_names=names,
        parents=[names.index(b.parent) if b.parent else -1 for b in bones],
        rest_matrices=np.stack([bone_matrix(b.head, b.tail, b.roll) for b in bones]),
        world_matrix=np.eye(4) if world_matrix is None else world_matrix,
    )


REFERENCE_RIGS = ("smpl", "mixamo", "ue5", "vroid", "cmu")
MIXAMO_WORLD = np.array([[0.01, 0, 0, 0], [0, 0, -0.01, 0], [0, 0.01, 0, 0], [0, 0, 0, 1.0]])  # Rx(90) * 0.01


def reference_joints(a_pose: bool = False) -> np.ndarray:
    """SMPL rest joints in Blender's frame (Z up, facing -Y), feet on z = 0; arms 45 degrees down if a_pose."""
    from retarget.rotations import axis_angle_to_matrix
    from retarget.skeleton import NUM_JOINTS, REST_JOINTS, forward_kinematics, joint_index
    from retarget.transfer import joints_to_blender

    joints = REST_JOINTS
    if a_pose:
        local = np.repeat(np.eye(3)[None], NUM_JOINTS, 0)
        local[joint_index("left_shoulder")] = axis_angle_to_matrix(np.array([0.0, 0.0, -np.pi / 4]))
        local[joint_index("right_shoulder")] = axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 4]))
        joints = forward_kinematics(local[None], REST_JOINTS[None, 0], REST_JOINTS)[0][0]
    joints = joints_to_blender(joints)
    return joints - np.array([0.0, 0.0, joints[:, 2].min()])


def reference_layout(name: str, a_pose: bool = False) -> tuple[list[BoneSpec], np.ndarray]:
    """Bones (armature space) and the armature's world matrix of a reference rig of one preset family."""
    from retarget.rigmaps import PRESETS
    from retarget.skeleton import JOINT_NAMES, PARENTS

    if name not in REFERENCE_RIGS:
        raise ValueError(f"no reference rig {name!r}; choose one of {', '.join(REFERENCE_RIGS)} (rigify: use Blender's metarig)")
    pos = {j: p for j, p in zip(JOINT_NAMES, reference_joints(a_pose))}
    names = dict(PRESETS[name].bones)
    up, forward = np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])
    lerp = lambda a, b, t: (1 - t) * pos[a] + t * pos[b]  # noqa: E731
    tails = {"pelvis": pos["spine1"], "spine3": pos["neck"], "head": pos["head"] + 0.2 * up}
    for side in ("left", "right"):
        hand = pos[f"{side}_wrist"] - pos[f"{side}_elbow"]
        tails[f"{side}_wrist"] = pos[f"{side}_wrist"] + 0.08 * hand / np.linalg.norm(hand)
        tails[f"{side}_foot"] = pos[f"{side}_foot"] + 0.06 * forward
    main_child = {"left_collar": "left_shoulder", "right_collar": "right_shoulder", "spine3": "neck"}
    for j, p in zip(JOINT_NAMES, PARENTS):
        if p >= 0 and JOINT_NAMES[p] not in tails and JOINT_NAMES[p] not in main_child:
            tails[JOINT_NAMES[p]] = pos[j]
    for j, c in main_child.items():
        tails.setdefault(j, pos[c])

    bones: list[BoneSpec] = []
    parent_of = {j: (JOINT_NAMES[p] if p >= 0 else "") for j, p in zip(JOINT_NAMES, PARENTS)}

    def add(bone, parent, head, tail, roll=0.0):
        bones.append(BoneSpec(bone, parent, np.asarray(head, float), np.asarray(tail, float), roll))

    root = PRESETS[name].root  # smpl, ue5 and vroid rigs have a bone at the origin above the hips
    if root:
        add(root, "", np.zeros(3), 0.2 * -forward)
    for j in JOINT_NAMES:
        add(names[j], names[parent_of[j]] if parent_of[j] else root, pos[j], tails[j])

    if name == "ue5":  # five spine bones, two neck bones, twist bones, fingers: a 65-bone game rig
        spine = [("spine_01", "pelvis", lerp("pelvis", "spine1", 0.5)), ("spine_03", "spine_02", lerp("spine1", "spine2", 0.5)),
                 ("neck_02", "neck_01", lerp("neck", "head", 0.5))]
        for bone, parent, head in spine:
            add(bone, parent, head, head + 0.05 * up)
        _reparent(bones, {"spine_02": "spine_01", "spine_04": "spine_03", "head": "neck_02"})
        for side, s in (("left", "l"), ("right", "r")):
            for upper, lower, bone in (("shoulder", "elbow", "upperarm"), ("elbow", "wrist", "lowerarm"),
                                       ("hip", "knee", "thigh"), ("knee", "ankle", "calf")):
                a, b = pos[f"{side}_{upper}"], pos[f"{side}_{lower}"]
                add(f"{bone}_twist_01_{s}", f"{bone}_{s}", (a + b) / 2, (a + 3 * b) / 4)
            wrist, elbow = pos[f"{side}_wrist"], pos[f"{side}_elbow"]
            along = (wrist - elbow) / np.linalg.norm(wrist - elbow)
            for k, finger in enumerate(("thumb", "index", "middle", "ring", "pinky")):
                base = wrist + along * (0.03 if finger == "thumb" else 0.09) + forward * (0.03 - 0.015 * k)
                parent = f"hand_{s}"
                for seg in range(1, 4):
                    head = base + along * 0.025 * (seg - 1)
                    add(f"{finger}_0{seg}_{s}", parent, head, head + along * 0.025)
                    parent = f"{finger}_0{seg}_{s}"
        add("ik_foot_root", "root", np.zeros(3), 0.1 * up)
    elif name == "mixamo":
        add("HeadTop_End", "Head", pos["head"] + 0.2 * up, pos["head"] + 0.3 * up)
        for side in ("Left", "Right"):
            hand = tails[f"{side.lower()}_wrist"]
            add(f"{side}HandIndex1", f"{side}Hand", hand, hand + (hand - pos[f"{side.lower()}_wrist"]))
            toe = tails[f"{side.lower()}_foot"]
            add(f"{side}Toe_End", f"{side}ToeBase", toe, toe + 0.03 * forward)
    elif name == "cmu":  # zero-length offsets: LHipJoint and LowerBack start at the hips
        for side, s in (("Left", "L"), ("Right", "R")):
            add(f"{s}HipJoint", "Hips", pos["pelvis"], pos[f"{side.lower()}_hip"])
        add("Neck1", "Neck", lerp("neck", "head", 0.5), pos["head"])
        _reparent(bones, {"LeftUpLeg": "LHipJoint", "RightUpLeg": "RHipJoint", "Head": "Neck1"})
        low = next(b for b in bones if b.name == "LowerBack")
        low.head = pos["pelvis"].copy()

    world = np.eye(4)
    if name == "mixamo":  # Mixamo FBX: Y-up centimetres under an object rotated +90 about X and scaled 0.01
        world = MIXAMO_WORLD.copy()
        to_armature = np.linalg.inv(world)
        for i, b in enumerate(bones):
            b.head = (to_armature @ np.append(b.head, 1.0))[:3]
            b.tail = (to_armature @ np.append(b.tail, 1.0))[:3]
            b.roll = np.radians((i * 137) % 360 - 180)  # rolls all over the place, as imported FBX rigs have
    return bones, world


def _reparent(bones: list[BoneSpec], parents: dict[str, str]) -> None:
    for b in bones:
        if b.name in parents:
            b.parent = parents[b.name]
    # keep parents before children so edit-bone creation and numpy order agree
    order, placed = [], set()
    pending = list(bones)
    while pending:
        for b in list(pending):
            if not b.parent or b.parent in placed:
                order.append(b)
                placed.add(b.name)
                pending.remove(b)
    bones[:] = order
