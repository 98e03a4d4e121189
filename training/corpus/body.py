"""From animation channels to SMPL-22 joints: the body rig every primitive drives.

Primitives never place joints directly. They write `Channels` (root path, heading, spine bends, toe
positions on the floor, wrist targets in the chest frame...) and `solve_pose` turns them into SMPL local
rotations and runs `retarget.skeleton.forward_kinematics`, so bone lengths are exact. Legs and arms are
two-bone IK chains whose bend plane follows a pole vector, so knees and elbows always bend the right
way; the pelvis height is capped by what the legs can reach, which keeps planted feet on their
footprints (no skating) and on the floor.

Frame conventions: world Y up, a heading of 0 faces +Z, a positive heading turns to the character's left
(+X). The chest frame is the global frame of spine3: +X the character's left, +Y up, +Z forward.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from retarget.skeleton import NUM_JOINTS, REST_JOINTS, forward_kinematics, joint_index, rest_offsets

FPS = 20.0
_OFFSETS = rest_offsets()
_J = {name: joint_index(name) for name in (
    "pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_foot", "right_foot", "spine1", "spine2", "spine3", "neck", "left_collar", "right_collar",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)}
# Per side (left, right): the joint indices of each limb.
HIP, KNEE, ANKLE, TOE = (_J["left_hip"], _J["right_hip"]), (_J["left_knee"], _J["right_knee"]), \
    (_J["left_ankle"], _J["right_ankle"]), (_J["left_foot"], _J["right_foot"])
COLLAR, SHOULDER, ELBOW, WRIST = (_J["left_collar"], _J["right_collar"]), (_J["left_shoulder"], _J["right_shoulder"]), \
    (_J["left_elbow"], _J["right_elbow"]), (_J["left_wrist"], _J["right_wrist"])
SIDE_SIGN = np.array([1.0, -1.0])  # +X is the character's left

STAND_HEIGHT = float(REST_JOINTS[0, 1] - REST_JOINTS[[10, 11], 1].min())  # pelvis height with flat feet on the floor
THIGH = float(np.linalg.norm(_OFFSETS[KNEE[0]]))
SHIN = float(np.linalg.norm(_OFFSETS[ANKLE[0]]))
UPPER_ARM = float(np.linalg.norm(_OFFSETS[ELBOW[0]]))
FOREARM = float(np.linalg.norm(_OFFSETS[WRIST[0]]))
LEG_REACH = 0.998 * (THIGH + SHIN)
ARM_REACH = 0.995 * (UPPER_ARM + FOREARM)
FOOT_BONES = _OFFSETS[list(TOE)]  # (2, 3) ankle -> toe of each foot at rest


@dataclass
class Channels:
    """Everything a primitive animates, one row per frame (T frames). Index 0 of a side axis is left."""

    root_xz: np.ndarray       # (T, 2) pelvis position on the floor plane
    heading: np.ndarray       # (T,) yaw of the pelvis, radians
    height: np.ndarray        # (T,) wanted pelvis height (capped by what the legs reach)
    pelvis_pitch: np.ndarray  # (T,) forward tilt of the pelvis
    spine: np.ndarray         # (T, 3) forward bend, lean to the left, twist to the left (whole spine)
    neck: np.ndarray          # (T, 2) nod down, turn left
    toes: np.ndarray          # (T, 2, 3) world position of each toe joint
    foot_yaw: np.ndarray      # (T, 2) yaw of each foot
    foot_pitch: np.ndarray    # (T, 2) heel raise (positive lifts the heel over the toe)
    knee_out: np.ndarray      # (T, 2) how far the knee pole turns outward (side kicks, jumping jacks)
    wrists: np.ndarray        # (T, 2, 3) wrist target relative to the shoulder, chest frame
    elbow_poles: np.ndarray   # (T, 2, 3) where each elbow points, chest frame
    shrug: np.ndarray         # (T, 2) collar raise, radians

    @property
    def frames(self) -> int:
        return len(self.heading)

    def slice(self, frames: slice) -> "Channels":
        """The channels of some frames (copies)."""
        return Channels(**{f.name: getattr(self, f.name)[frames].copy() for f in fields(self)})

    @staticmethod
    def concat(parts: list["Channels"]) -> "Channels":
        return Channels(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Channels)})


# Arms hanging relaxed at the sides, elbows pointing back: the neutral the primitives start from.
REST_WRIST = np.array([[0.06, -0.48, 0.06], [-0.06, -0.48, 0.06]])
REST_POLE = np.array([[0.3, -0.2, -1.0], [-0.3, -0.2, -1.0]])


def yaw_vectors(heading: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward and left unit vectors (..., 2) on the floor plane (x, z) for a heading."""
    forward = np.stack([np.sin(heading), np.cos(heading)], -1)
    left = np.stack([np.cos(heading), -np.sin(heading)], -1)
    return forward, left


# Toe positions relative to the pelvis in the rest pose, (2, 2) as (x, z) per side.
TOE_REST_XZ = REST_JOINTS[list(TOE)][:, [0, 2]] - REST_JOINTS[0, [0, 2]]


def standing_toes(root_xz: np.ndarray, heading: np.ndarray, widen=0.0) -> np.ndarray:
    """Toe positions (T, 2, 3) of flat feet under the pelvis; `widen` (T,) or scalar spreads each foot outward."""
    forward, left = yaw_vectors(np.asarray(heading, float))
    lateral = TOE_REST_XZ[:, 0] * SIDE_SIGN + np.asarray(widen, float)[..., None]  # outward distance per side
    xz = (root_xz[:, None] + forward[:, None] * TOE_REST_XZ[None, :, 1, None]
          + left[:, None] * (SIDE_SIGN[:, None] * lateral[..., None]))
    return np.stack([xz[..., 0], np.zeros(xz.shape[:-1]), xz[..., 1]], -1)


def neutral(frames: int, root_xz, heading: float) -> Channels:
    """A person standing still at root_xz facing heading, for `frames` frames."""
    root = np.broadcast_to(np.asarray(root_xz, float), (frames, 2)).copy()
    head = np.full(frames, float(heading))
    return Channels(
        root_xz=root, heading=head, height=np.full(frames, STAND_HEIGHT), pelvis_pitch=np.zeros(frames),
        spine=np.zeros((frames, 3)), neck=np.zeros((frames, 2)), toes=standing_toes(root, head),
        foot_yaw=np.repeat(head[:, None], 2, 1), foot_pitch=np.zeros((frames, 2)),
        knee_out=np.zeros((frames, 2)),
        wrists=np.repeat(REST_WRIST[None], frames, 0), elbow_poles=np.repeat(REST_POLE[None], frames, 0),
        shrug=np.zeros((frames, 2)),
    )


# --- rotation helpers, vectorised over frames -------------------------------------------------------

def rot_x(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, float)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, float)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, float)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of (..., 3) arrays, without np.cross's per-call overhead (a hot spot here)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], -1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _frame(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frames (..., 3, 3) whose columns are primary, secondary made orthogonal, their cross."""
    e1 = _unit(primary)
    e2 = _unit(secondary - e1 * np.sum(secondary * e1, -1, keepdims=True))
    return np.stack([e1, e2, _cross(e1, e2)], -1)


def _aim(rest_dir: np.ndarray, rest_pole: np.ndarray, direction: np.ndarray, pole: np.ndarray) -> np.ndarray:
    """Global rotation taking a bone's rest direction to `direction` and its rest pole side to `pole`."""
    rest = _frame(np.broadcast_to(rest_dir, direction.shape), np.broadcast_to(rest_pole, direction.shape))
    return _frame(direction, pole) @ np.swapaxes(rest, -1, -2)


def two_bone_joint(start: np.ndarray, target: np.ndarray, upper: float, lower: float, pole: np.ndarray) -> np.ndarray:
    """Middle joint (knee, elbow) of a chain start->target, displaced towards `pole`; targets beyond reach
    are pulled in along the line."""
    d = target - start
    dist = np.clip(np.linalg.norm(d, axis=-1, keepdims=True), abs(upper - lower) + 1e-4, upper + lower - 1e-6)
    axis = _unit(d)
    along = (upper**2 - lower**2 + dist**2) / (2 * dist)
    side = np.sqrt(np.maximum(upper**2 - along**2, 0.0))
    bend = _unit(pole - axis * np.sum(pole * axis, -1, keepdims=True))
    return start + axis * along + bend * side


def _chain_rotations(start, middle, end, rest_upper, rest_lower, rest_pole, pole):
    g_upper = _aim(rest_upper, rest_pole, middle - start, pole)
    g_lower = _aim(rest_lower, rest_pole, end - middle, pole)
    return g_upper, g_lower


def solve_pose(ch: Channels) -> np.ndarray:
    """Joints (T, 22, 3) in metres for the channels (see the module docstring)."""
    T = ch.frames
    local = np.broadcast_to(np.eye(3), (T, NUM_JOINTS, 3, 3)).copy()
    glob = np.empty_like(local)

    heading_rot = rot_y(ch.heading)
    g_pelvis = heading_rot @ rot_x(ch.pelvis_pitch)
    local[:, 0] = g_pelvis
    third = ch.spine / 3.0
    spine_local = rot_y(third[:, 2]) @ rot_z(-third[:, 1]) @ rot_x(third[:, 0])
    for name in ("spine1", "spine2", "spine3"):
        local[:, _J[name]] = spine_local
    local[:, _J["neck"]] = rot_y(ch.neck[:, 1]) @ rot_x(ch.neck[:, 0])

    # Feet: the foot bone turns with the foot's yaw and heel raise; the ankle hangs behind the toe.
    g_foot = rot_y(ch.foot_yaw) @ rot_x(ch.foot_pitch)  # (T, 2, 3, 3)
    ankles = ch.toes - np.einsum("tsij,sj->tsi", g_foot, FOOT_BONES)

    # Pelvis height: as wanted, but never higher than both legs reach (keeps each foot on its target).
    hips_local = np.einsum("tij,sj->tsi", g_pelvis, _OFFSETS[list(HIP)])
    hips_xz = ch.root_xz[:, None] + hips_local[..., [0, 2]]
    dxz = np.linalg.norm(hips_xz - ankles[..., [0, 2]], axis=-1)
    reach = ankles[..., 1] - hips_local[..., 1] + np.sqrt(np.maximum(LEG_REACH**2 - dxz**2, 0.0))
    cap = reach.min(axis=1)
    height = np.minimum(ch.height, cap)
    root = np.stack([ch.root_xz[:, 0], height, ch.root_xz[:, 1]], -1)

    # Legs.
    hips = root[:, None] + hips_local
    forward = heading_rot[..., :, 2]
    left = heading_rot[..., :, 0]
    for s in range(2):
        out = SIDE_SIGN[s] * left * ch.knee_out[:, s, None]
        pole = _unit(forward + out)
        knee = two_bone_joint(hips[:, s], ankles[:, s], THIGH, SHIN, pole)
        g_thigh, g_shin = _chain_rotations(hips[:, s], knee, ankles[:, s], _OFFSETS[KNEE[s]], _OFFSETS[ANKLE[s]],
                                           np.array([0.0, 0.0, 1.0]), pole)
        local[:, HIP[s]] = np.swapaxes(g_pelvis, -1, -2) @ g_thigh
        local[:, KNEE[s]] = np.swapaxes(g_thigh, -1, -2) @ g_shin
        local[:, ANKLE[s]] = np.swapaxes(g_shin, -1, -2) @ g_foot[:, s]

    # Chest frame and shoulders (partial FK down the spine), then arms.
    glob[:, 0] = g_pelvis
    pos = {0: root}
    for name, parent in (("spine1", 0), ("spine2", _J["spine1"]), ("spine3", _J["spine2"])):
        j = _J[name]
        glob[:, j] = glob[:, parent] @ local[:, j]
        pos[j] = pos[parent] + glob[:, parent] @ _OFFSETS[j]
    g_chest, chest = glob[:, _J["spine3"]], pos[_J["spine3"]]
    for s in range(2):
        local[:, COLLAR[s]] = rot_z(SIDE_SIGN[s] * ch.shrug[:, s])
        g_collar = g_chest @ local[:, COLLAR[s]]
        collar = chest + g_chest @ _OFFSETS[COLLAR[s]]
        shoulder = collar + g_collar @ _OFFSETS[SHOULDER[s]]
        wrist = shoulder + np.einsum("tij,tj->ti", g_chest, ch.wrists[:, s])
        pole = np.einsum("tij,tj->ti", g_chest, _unit(ch.elbow_poles[:, s]))
        elbow = two_bone_joint(shoulder, wrist, UPPER_ARM, FOREARM, pole)
        g_upper, g_fore = _chain_rotations(shoulder, elbow, wrist, _OFFSETS[ELBOW[s]], _OFFSETS[WRIST[s]],
                                           np.array([0.0, 0.0, -1.0]), pole)
        local[:, SHOULDER[s]] = np.swapaxes(g_collar, -1, -2) @ g_upper
        local[:, ELBOW[s]] = np.swapaxes(g_upper, -1, -2) @ g_fore

    joints, _ = forward_kinematics(local, root)
    return joints
