"""BVH motion capture files -> SMPL-22 joint sequences (metres, Y up, facing +Z at frame 0).

The pipeline is a chain of pure functions: `parse_bvh` (text -> hierarchy + channel values),
`local_rotations_and_translations` (channels -> per-joint quaternions and translations), `resample`
(slerp to the target frame rate), `bvh_forward_kinematics` (-> source joint positions), `match_skeleton`
(source joints -> SMPL-22 points), then unit, up axis and placement fixes in `bvh_to_smpl_joints`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.motion.io import DEFAULT_FPS, validate_fps
from retarget.rotations import axis_angle_to_quat, qmul, qnormalize, quat_to_matrix
from retarget.skeleton import JOINT_NAMES, PARENTS, joint_index


class BvhError(ValueError):
    """A BVH file that cannot be imported; the message says what is wrong and what to do."""


# ---------------------------------------------------------------------------------------------------
# Parsing

_CHANNEL_NAMES = ("xposition", "yposition", "zposition", "xrotation", "yrotation", "zrotation")


@dataclass(frozen=True)
class BvhJoint:
    name: str
    parent: int                 # index into BvhFile.joints, -1 for the root
    offset: np.ndarray          # (3,) rest translation from the parent, file units
    channels: tuple[str, ...]   # lower-case channel names in file order, e.g. ("zrotation", "xrotation", ...)


@dataclass(frozen=True)
class BvhFile:
    joints: tuple[BvhJoint, ...]
    frame_time: float           # seconds per frame, as stored
    values: np.ndarray          # (frames, channels) float64, channels in hierarchy order

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def fps(self) -> float:
        # Files store the frame time rounded (".0083333" for 120 fps); snap to the integer rate it stands for.
        fps = 1.0 / self.frame_time
        return float(round(fps)) if abs(fps - round(fps)) < 1e-3 * fps else fps


class _Tokens:
    """Whitespace tokens of the HIERARCHY section with a cursor; errors name the line."""

    def __init__(self, text: str, source: str):
        self.items = [(token, number) for number, line in enumerate(text.splitlines(), start=1) for token in line.split()]
        self.pos = 0
        self.source = source

    def peek(self) -> str | None:
        return self.items[self.pos][0] if self.pos < len(self.items) else None

    def take(self, expected: str | None = None) -> str:
        if self.pos >= len(self.items):
            raise BvhError(f"{self.source}: the HIERARCHY section ends early (a '}}' or OFFSET is missing)")
        token, line = self.items[self.pos]
        if expected is not None and token.upper() != expected.upper():
            raise BvhError(f"{self.source}, line {line}: expected '{expected}', found '{token}'")
        self.pos += 1
        return token

    def number(self, what: str) -> float:
        line = self.items[min(self.pos, len(self.items) - 1)][1] if self.items else 0
        token = self.take()
        try:
            return float(token)
        except ValueError:
            raise BvhError(f"{self.source}, line {line}: {what} should be a number, found '{token}'") from None


def _parse_joint(tokens: _Tokens, name: str, parent: int, joints: list[BvhJoint]) -> None:
    tokens.take("{")
    tokens.take("OFFSET")
    offset = np.array([tokens.number(f"OFFSET of {name}") for _ in range(3)])
    tokens.take("CHANNELS")
    declared = tokens.number(f"CHANNELS count of {name}")
    channels: list[str] = []
    while (tokens.peek() or "").lower() in _CHANNEL_NAMES:
        channels.append(tokens.take().lower())
    if declared != len(channels):
        raise BvhError(
            f"{tokens.source}: joint {name} declares CHANNELS {declared:g} but lists {len(channels)} channel names"
        )
    index = len(joints)
    joints.append(BvhJoint(name, parent, offset, tuple(channels)))
    while True:
        token = tokens.take()
        if token == "}":
            return
        if token.upper() == "JOINT":
            _parse_joint(tokens, tokens.take(), index, joints)
        elif token.upper() == "END":
            tokens.take("Site")
            tokens.take("{")
            tokens.take("OFFSET")
            for _ in range(3):
                tokens.number(f"End Site OFFSET under {name}")
            tokens.take("}")  # end sites carry no channels and are not joints we map
        else:
            raise BvhError(f"{tokens.source}: unexpected '{token}' inside joint {name} (expected JOINT, End Site or '}}')")


def _parse_motion(text: str, channel_count: int, source: str) -> tuple[float, np.ndarray]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    header = re.match(r"Frames:\s*(\S+)$", lines[0], re.IGNORECASE) if lines else None
    if not header or not header[1].isdigit():
        raise BvhError(f"{source}: the MOTION section must start with 'Frames: N'")
    frames = int(header[1])
    timing = re.match(r"Frame\s+Time:\s*(\S+)$", lines[1], re.IGNORECASE) if len(lines) > 1 else None
    try:
        frame_time = float(timing[1]) if timing else -1.0
    except ValueError:
        frame_time = -1.0
    if not frame_time > 0:
        raise BvhError(f"{source}: the MOTION section needs a positive 'Frame Time: seconds' line after 'Frames:'")
    if frames == 0:
        raise BvhError(f"{source}: the MOTION section is empty (Frames: 0); export the animation with its frames")
    rows = [line.split() for line in lines[2:]]
    for i, row in enumerate(rows[:frames]):
        if len(row) != channel_count:
            raise BvhError(
                f"{source}: frame {i + 1} has {len(row)} values but the HIERARCHY declares {channel_count} channels; "
                "the hierarchy and the motion data do not match"
            )
    if len(rows) < frames:
        raise BvhError(
            f"{source}: the motion data is truncated: 'Frames: {frames}' but only {len(rows)} frame lines are present"
        )
    # The header count wins over extra lines: exporters leave a spare one (assimp's Boxing_Toes.bvh has 3070 for 3069).
    rows = rows[:frames]
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        bad = next(i for i, row in enumerate(rows) if not all(_is_number(v) for v in row))
        raise BvhError(f"{source}: frame {bad + 1} holds a value that is not a number") from None
    if not np.isfinite(values).all():
        raise BvhError(f"{source}: frame {int(np.argwhere(~np.isfinite(values))[0, 0]) + 1} holds NaN or infinite values")
    return frame_time, values


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def parse_bvh(text: str, source: str = "BVH") -> BvhFile:
    """Parse BVH text; every problem is a BvhError naming `source` and what is wrong."""
    if not text.lstrip().upper().startswith("HIERARCHY"):
        first = text.strip().splitlines()[0][:40] if text.strip() else "an empty file"
        raise BvhError(f"{source} is not a BVH file: it should start with 'HIERARCHY', found {first!r}")
    split = re.search(r"^\s*MOTION\s*$", text, re.MULTILINE)
    if split is None:
        raise BvhError(f"{source}: no MOTION section; the file holds a skeleton but no animation")
    tokens = _Tokens(text[: split.start()], source)
    tokens.take("HIERARCHY")
    if (tokens.peek() or "").upper() != "ROOT":
        raise BvhError(f"{source}: the HIERARCHY has no ROOT joint")
    tokens.take()
    joints: list[BvhJoint] = []
    _parse_joint(tokens, tokens.take(), -1, joints)
    if tokens.peek() is not None:
        raise BvhError(f"{source}: only one ROOT skeleton is supported, found more after {joints[0].name}")
    channel_count = sum(len(j.channels) for j in joints)
    frame_time, values = _parse_motion(text[split.end():], channel_count, source)
    return BvhFile(tuple(joints), frame_time, values)


def read_bvh(path: str | Path) -> BvhFile:
    path = Path(path)
    if not path.is_file():
        raise BvhError(f"{path}: no such file")
    data = path.read_bytes()
    if b"\0" in data[:4096]:
        raise BvhError(f"{path} is not a BVH file: it holds binary data (BVH is plain text starting with 'HIERARCHY')")
    return parse_bvh(data.decode("utf-8", errors="replace"), str(path))


# ---------------------------------------------------------------------------------------------------
# Channels, resampling and forward kinematics

_AXES = {"x": np.array([1.0, 0.0, 0.0]), "y": np.array([0.0, 1.0, 0.0]), "z": np.array([0.0, 0.0, 1.0])}


def local_rotations_and_translations(bvh: BvhFile) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame local quaternions (F, J, 4) and translations (F, J, 3) of every joint, file units.

    Rotation channels compose in the order listed (`Zrotation Xrotation Yrotation` is Rz @ Rx @ Ry), in
    degrees. Position channels replace the joint's OFFSET (the root's are its place in the world)."""
    frames = len(bvh.values)
    quats = np.zeros((frames, len(bvh.joints), 4))
    quats[..., 0] = 1.0
    trans = np.broadcast_to(np.stack([j.offset for j in bvh.joints]), (frames, len(bvh.joints), 3)).copy()
    column = 0
    for index, joint in enumerate(bvh.joints):
        for channel in joint.channels:
            value = bvh.values[:, column]
            column += 1
            axis = channel[0]
            if channel.endswith("position"):
                trans[:, index, "xyz".index(axis)] = value
            else:
                step = axis_angle_to_quat(np.radians(value)[:, None] * _AXES[axis])
                quats[:, index] = qmul(quats[:, index], step)
    return quats, trans


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions (..., 4) with weights t broadcast to (..., 1)."""
    dot = (q0 * q1).sum(-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)  # take the short way round
    dot = np.abs(dot).clip(max=1.0)
    angle = np.arccos(dot)
    sin = np.sin(angle)
    near = sin < 1e-6  # nearly equal rotations: a normalised lerp is exact enough and avoids 0/0
    safe = np.where(near, 1.0, sin)
    w0 = np.where(near, 1.0 - t, np.sin((1.0 - t) * angle) / safe)
    w1 = np.where(near, t, np.sin(t * angle) / safe)
    return qnormalize(w0 * q0 + w1 * q1)


def resample(quats: np.ndarray, trans: np.ndarray, source_fps: float, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample the clip at `fps` over its own duration: slerp rotations, lerp translations.

    Interpolating the local channels (not the joint positions) keeps every bone its exact length."""
    frames = len(quats)
    count = int(math.floor((frames - 1) * fps / source_fps + 1e-6)) + 1
    position = np.arange(count) * (source_fps / fps)  # fractional source frame of each output frame
    lower = np.minimum(np.floor(position + 1e-6).astype(int), frames - 2)
    frac = np.clip(position - lower, 0.0, 1.0)[:, None, None]
    return slerp(quats[lower], quats[lower + 1], frac), trans[lower] + frac * (trans[lower + 1] - trans[lower])


def bvh_forward_kinematics(bvh: BvhFile, quats: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """World positions (F, J, 3) of every BVH joint; a joint's rotation turns the bones to its children."""
    local = quat_to_matrix(quats)
    world_rot = np.empty_like(local)
    positions = np.empty(trans.shape)
    for index, joint in enumerate(bvh.joints):  # parents come before children in file order
        if joint.parent < 0:
            world_rot[:, index], positions[:, index] = local[:, index], trans[:, index]
            continue
        p = joint.parent
        world_rot[:, index] = world_rot[:, p] @ local[:, index]
        positions[:, index] = positions[:, p] + np.einsum("fij,fj->fi", world_rot[:, p], trans[:, index])
    return positions


# ---------------------------------------------------------------------------------------------------
# Source skeleton -> SMPL-22


@dataclass(frozen=True)
class Between:
    """A point on the bone from joint `start` to its child `end`, at fraction `t` (rigid with that bone)."""
    start: str
    end: str
    t: float = 0.5


Point = str | Between


def _with_right_side(left_side: dict[str, tuple[Point, ...]], right: dict[str, str]) -> dict[str, tuple[Point, ...]]:
    """Complete a table given for the centre and left side by mirroring the names of left joints."""
    def mirror(point: Point) -> Point:
        if isinstance(point, Between):
            return Between(mirror(point.start), mirror(point.end), point.t)
        for old, new in right.items():
            if point.startswith(old):
                return new + point[len(old):]
        return point

    table = dict(left_side)
    for joint, points in left_side.items():
        if joint.startswith("left_"):
            table["right_" + joint[5:]] = tuple(mirror(p) for p in points)
    return {name: table[name] for name in JOINT_NAMES}


# Each SMPL joint lists the source points it may come from, best first. A BVH joint's position is the
# origin of its bone, so the SMPL joint and the source joint must sit at the same anatomical point.
SKELETON_CONVENTIONS: dict[str, dict[str, tuple[Point, ...]]] = {
    # CMU (cgspeed conversion). LowerBack, Neck and LeftShoulder have zero offsets: their origins coincide
    # with Hips, Spine1 and Spine1, so they cannot stand for SMPL joints that need a bone of their own.
    # Spine (~11 cm above the hips) is SMPL's spine1; Spine1 is where the clavicles branch off (spine3);
    # spine2 lies half way up the Spine bone between them. Neck1 is the base of the neck, Head the skull
    # base. The collar sits half way along the clavicle (LeftShoulder -> LeftArm). LHipJoint is unused:
    # its origin is the hips.
    "CMU": _with_right_side({
        "pelvis": ("Hips",), "spine1": ("Spine",), "spine2": (Between("Spine", "Spine1"),), "spine3": ("Spine1",),
        "neck": ("Neck1",), "head": ("Head",),
        "left_hip": ("LeftUpLeg",), "left_knee": ("LeftLeg",), "left_ankle": ("LeftFoot",), "left_foot": ("LeftToeBase",),
        "left_collar": (Between("LeftShoulder", "LeftArm"),), "left_shoulder": ("LeftArm",),
        "left_elbow": ("LeftForeArm",), "left_wrist": ("LeftHand",),
    }, {"Left": "Right"}),
    # Mixamo (the `mixamorig:` prefix is stripped before matching): three spine joints like SMPL's.
    "Mixamo": _with_right_side({
        "pelvis": ("Hips",), "spine1": ("Spine",), "spine2": ("Spine1",), "spine3": ("Spine2",),
        "neck": ("Neck",), "head": ("Head",),
        "left_hip": ("LeftUpLeg",), "left_knee": ("LeftLeg",), "left_ankle": ("LeftFoot",), "left_foot": ("LeftToeBase",),
        "left_collar": ("LeftShoulder",), "left_shoulder": ("LeftArm",),
        "left_elbow": ("LeftForeArm",), "left_wrist": ("LeftHand",),
    }, {"Left": "Right"}),
    # Biovision-style (Hips/Ab/Chest/LeftCollar/LeftHip/LeftToes), e.g. assimp's Boxing_Toes.bvh. The
    # collars and the neck all start at the top of the chest (the origin of Neck), so that point is spine3:
    # SMPL's collars hang off spine3, and any other choice lets the spine3 -> collar distance change as
    # the collar turns. Each SMPL spine bone is then one source bone (Ab, Chest); the neck joint sits half
    # way up the Neck bone and the collar half way along the clavicle, both rigid with spine3.
    "Biovision": _with_right_side({
        "pelvis": ("Hips",), "spine1": ("Ab",), "spine2": ("Chest",), "spine3": ("Neck",),
        "neck": (Between("Neck", "Head"),), "head": ("Head",),
        "left_hip": ("LeftHip",), "left_knee": ("LeftKnee",), "left_ankle": ("LeftAnkle",),
        "left_foot": ("LeftToes", "LeftToe"), "left_collar": (Between("LeftCollar", "LeftShoulder"),),
        "left_shoulder": ("LeftShoulder",), "left_elbow": ("LeftElbow",), "left_wrist": ("LeftWrist",),
    }, {"Left": "Right"}),
    # SMPL / SMPL-X joint names (Pelvis, L_Hip, Spine1, ...): the joints are SMPL's own.
    "SMPL": _with_right_side({
        "pelvis": ("Pelvis", "Hips"), "spine1": ("Spine1",), "spine2": ("Spine2",), "spine3": ("Spine3",),
        "neck": ("Neck",), "head": ("Head",),
        **{f"left_{part}": (f"L_{part.capitalize()}", f"left_{part}")
           for part in ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist")},
    }, {"L_": "R_", "left_": "right_"}),
}


def normalize_name(name: str) -> str:
    """Match key of a joint name: no namespace (`mixamorig:`, `mixamorig1_`), no case, no separators."""
    key = re.sub(r"[^a-z0-9]", "", name.split(":")[-1].lower())
    return re.sub(r"^mixamorig\d*", "", key)


@dataclass(frozen=True)
class SkeletonMatch:
    convention: str
    points: tuple[Point, ...]   # one source point per SMPL joint, in JOINT_NAMES order
    missing: tuple[str, ...]    # SMPL joints with no source point (empty when the match is complete)


def _resolve(points: tuple[Point, ...], names: dict[str, str]) -> Point | None:
    for point in points:
        wanted = (point.start, point.end) if isinstance(point, Between) else (point,)
        if all(normalize_name(w) in names for w in wanted):
            if isinstance(point, Between):
                return Between(names[normalize_name(point.start)], names[normalize_name(point.end)], point.t)
            return names[normalize_name(point)]
    return None


def match_skeleton(source_names: list[str]) -> SkeletonMatch:
    """Pick the naming convention that explains the most SMPL joints; BvhError when none explains all."""
    names = {normalize_name(n): n for n in source_names}
    best: SkeletonMatch | None = None
    for convention, table in SKELETON_CONVENTIONS.items():
        resolved = [_resolve(table[joint], names) for joint in JOINT_NAMES]
        missing = tuple(j for j, p in zip(JOINT_NAMES, resolved) if p is None)
        if best is None or len(missing) < len(best.missing):
            best = SkeletonMatch(convention, tuple(resolved), missing)
    assert best is not None
    if best.missing:
        table = SKELETON_CONVENTIONS[best.convention]
        wanted = "; ".join(
            f"{j} (looked for {' or '.join(_describe(p) for p in table[j])})" for j in best.missing
        )
        raise BvhError(
            f"cannot map this skeleton to SMPL-22 joints; closest naming is {best.convention}-style, which lacks "
            f"{wanted}. Joints found in the file: {', '.join(source_names)}. Rename those joints to CMU, Mixamo "
            "or SMPL names and import again"
        )
    return best


def _describe(point: Point) -> str:
    return f"{point.start}+{point.end}" if isinstance(point, Between) else point


def smpl_points(positions: np.ndarray, names: list[str], points: tuple[Point, ...]) -> np.ndarray:
    """Gather the SMPL-22 joints (..., 22, 3) from source joint positions (..., J, 3)."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for point in points:
        if isinstance(point, Between):
            a, b = positions[..., index[point.start], :], positions[..., index[point.end], :]
            out.append(a + point.t * (b - a))
        else:
            out.append(positions[..., index[point], :])
    return np.stack(out, axis=-2)


# ---------------------------------------------------------------------------------------------------
# Units, up axis, placement

# Metres per file unit. cgspeed's CMU files keep the ASF length unit: 1/0.45 inch = 0.056444 m.
UNITS: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.0254 / 0.45}
_AUTO_UNITS = ("m", "cm", "mm", "cmu")  # inches are left out: an inch rig is indistinguishable from a tall cm one
# Length of the path ankle -> knee -> hip -> pelvis -> spine -> neck -> head on an adult (SMPL mean body: 1.47 m).
_ANKLE_TO_HEAD = (7, 4, 1, 0, 3, 6, 9, 12, 15)
_TYPICAL_ANKLE_TO_HEAD_M = 1.45
_PLAUSIBLE_ANKLE_TO_HEAD_M = (0.6, 2.5)


def ankle_to_head_length(rest_joints: np.ndarray) -> float:
    """Sum of bone lengths from the left ankle up to the head, pose-independent, file units."""
    chain = rest_joints[list(_ANKLE_TO_HEAD)]
    return float(np.linalg.norm(np.diff(chain, axis=0), axis=-1).sum())


def detect_unit(rest_joints: np.ndarray) -> str:
    """The unit that gives the skeleton an adult's ankle-to-head length (nearest on a log scale)."""
    length = ankle_to_head_length(rest_joints)
    if not length > 0:
        raise BvhError("the skeleton has no size (all offsets are zero); cannot tell its unit")
    unit = min(_AUTO_UNITS, key=lambda u: abs(math.log(length * UNITS[u] / _TYPICAL_ANKLE_TO_HEAD_M)))
    metres = length * UNITS[unit]
    low, high = _PLAUSIBLE_ANKLE_TO_HEAD_M
    if not low <= metres <= high:
        raise BvhError(
            f"cannot tell the skeleton's unit: its ankle-to-head length is {length:g} file units, not a human size "
            f"in {', '.join(_AUTO_UNITS)}; pass the unit explicitly (--unit)"
        )
    return unit


def up_axis_to_y(rest_joints: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) that turns the skeleton's rest up direction (pelvis -> head, +Y or +Z) to +Y."""
    up = rest_joints[JOINT_NAMES.index("head")] - rest_joints[0]
    axis = int(np.argmax(np.abs(up)))
    if axis == 1 and up[1] > 0:
        return np.eye(3)
    if axis == 2 and up[2] > 0:
        return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # Z up -> Y up
    raise BvhError(
        f"the skeleton's rest pose is not upright: the head lies along {'-' if up[axis] < 0 else '+'}{'XYZ'[axis]} "
        "from the hips (expected +Y, or +Z for Z-up files)"
    )


def face_forward(joints: np.ndarray) -> np.ndarray:
    """Turn the motion about the vertical through the first-frame pelvis so frame 0 faces +Z, and move
    that pelvis to X = Z = 0 (the DESIGN joint contract); heights are kept."""
    first = joints[0]
    r_hip, l_hip, r_shoulder, l_shoulder = (joint_index(n) for n in ("right_hip", "left_hip", "right_shoulder", "left_shoulder"))
    across = first[r_hip] - first[l_hip] + first[r_shoulder] - first[l_shoulder]
    heading = math.atan2(across[2], -across[0])  # forward = up x across = (across_z, 0, -across_x)
    c, s = math.cos(heading), math.sin(heading)
    turn = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])  # rotation by -heading about +Y
    centre = first[0] * np.array([1.0, 0.0, 1.0])
    return (joints - centre) @ turn.T


def _check_bones(rest_joints: np.ndarray, convention: str) -> None:
    lengths = np.linalg.norm(rest_joints[1:] - rest_joints[list(PARENTS[1:])], axis=-1)
    scale = lengths.max()
    for child, length in enumerate(lengths, start=1):
        if length < 1e-4 * scale:
            raise BvhError(
                f"the {convention}-style skeleton puts SMPL joints {JOINT_NAMES[PARENTS[child]]} and "
                f"{JOINT_NAMES[child]} at the same point (a zero-length bone); the motion cannot be used"
            )


@dataclass(frozen=True)
class ImportedBvh:
    joints: np.ndarray   # (T, 22, 3) float32, metres, Y up, frame 0 at the origin facing +Z
    fps: float
    convention: str      # the naming the skeleton matched (CMU, Mixamo, Biovision, SMPL)
    unit: str            # the file unit (key of UNITS)
    source_fps: float


def bvh_to_smpl_joints(bvh: BvhFile, fps: float = DEFAULT_FPS, unit: str = "auto") -> ImportedBvh:
    """SMPL-22 joints of a parsed BVH, resampled to `fps`."""
    fps = validate_fps(fps)
    if unit != "auto" and unit not in UNITS:
        raise BvhError(f"unknown unit {unit!r}; choose auto or one of {', '.join(UNITS)}")
    if len(bvh.values) < 2:
        raise BvhError(f"the BVH holds {len(bvh.values)} frame; a motion needs at least 2")
    match = match_skeleton(bvh.names)
    quats, trans = local_rotations_and_translations(bvh)

    rest_trans = np.stack([j.offset for j in bvh.joints])[None]
    rest_quats = np.tile([1.0, 0.0, 0.0, 0.0], (1, len(bvh.joints), 1))
    rest = smpl_points(bvh_forward_kinematics(bvh, rest_quats, rest_trans)[0], bvh.names, match.points)
    _check_bones(rest, match.convention)
    unit = detect_unit(rest) if unit == "auto" else unit
    upright = up_axis_to_y(rest)

    quats, trans = resample(quats, trans, bvh.fps, fps)
    if len(quats) < 2:
        raise BvhError(f"the clip lasts {(len(bvh.values) - 1) * bvh.frame_time:.3f} s: too short for 2 frames at {fps:g} fps")
    positions = smpl_points(bvh_forward_kinematics(bvh, quats, trans), bvh.names, match.points)
    joints = face_forward(positions @ upright.T * UNITS[unit])
    return ImportedBvh(joints.astype(np.float32), fps, match.convention, unit, bvh.fps)


def import_bvh(path: str | Path, fps: float = DEFAULT_FPS, unit: str = "auto") -> ImportedBvh:
    bvh = read_bvh(path)
    try:
        return bvh_to_smpl_joints(bvh, fps, unit)
    except BvhError as exc:
        raise BvhError(f"{path}: {exc}") from None
