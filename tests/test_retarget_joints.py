"""Test-only SMPL motions for the retargeting tests, made by forward kinematics so the truth is known."""
from __future__ import annotations

import functools

import numpy as np

from retarget.rotations import axis_angle_to_matrix
from retarget.skeleton import NUM_JOINTS, PARENTS, REST_JOINTS, forward_kinematics, joint_index

FPS = 20.0


def random_fk_motion(frames: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth but busy motion: every joint swings on its own sine; the body walks forward and turns.
    Returns joints (T, 22, 3) and the global rotations FK used (T, 22, 3, 3)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, frames / FPS, frames)[:, None, None]
    amplitude = rng.uniform(0.1, 0.7, (1, NUM_JOINTS, 3))
    axis_angle = amplitude * np.sin(2 * np.pi * rng.uniform(0.2, 0.8, (1, NUM_JOINTS, 3)) * t + rng.uniform(0, 6, (1, NUM_JOINTS, 3)))
    axis_angle[:, 0] = 0.3 * axis_angle[:, 0] + np.array([0.0, 1.0, 0.0]) * 0.8 * t[:, 0]  # turn while moving
    trans = np.stack([0.3 * np.sin(t[:, 0, 0]), 0.95 + 0.03 * np.sin(4 * t[:, 0, 0]), 0.9 * t[:, 0, 0]], axis=-1)
    joints, glob = forward_kinematics(axis_angle_to_matrix(axis_angle), trans)
    return joints, glob


def natural_arm_motion(frames: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Limbs that swing without twisting and elbows/knees that straighten and bend again, while the whole body
    spins two full turns: every true rotation changes by a few degrees per frame at most."""
    t = np.linspace(0.0, 1.0, frames)
    local = np.zeros((frames, NUM_JOINTS, 3))
    local[:, 0, 1] = 4 * np.pi * t                                  # two full turns about +Y
    bend = 0.5 * (1 - np.cos(2 * np.pi * 2 * t))                    # 0 (straight) .. 1 .. 0 .. 1 .. 0
    local[:, joint_index("left_elbow"), 1] = -1.6 * bend             # flex about the rest hinge (-Y for the left elbow)
    local[:, joint_index("right_elbow"), 1] = 1.6 * bend
    local[:, joint_index("left_knee"), 0] = 1.4 * bend               # knees flex about +X
    local[:, joint_index("right_knee"), 0] = 1.4 * bend
    local[:, joint_index("left_shoulder"), 2] = -0.8 * np.sin(2 * np.pi * t)
    local[:, joint_index("right_hip"), 0] = -0.6 * np.sin(2 * np.pi * t)
    trans = np.repeat(REST_JOINTS[None, 0], frames, 0)
    return forward_kinematics(axis_angle_to_matrix(local), trans)


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle of a^T b for rotation matrices (..., 3, 3)."""
    rel = np.swapaxes(a, -1, -2) @ b
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def direction_errors_deg(heads: np.ndarray, bone_index: dict[str, int], source: np.ndarray) -> dict[str, float]:
    """Per mapped limb bone (clavicle, upper arm, forearm, thigh, shin, foot: SMPL joint j with mapped parent p),
    the worst angle over frames between the target direction head(p)->head(j) and the source direction p->j."""
    from retarget.skeleton import JOINT_NAMES, PARENTS

    limbs = ("shoulder", "elbow", "wrist", "knee", "ankle", "foot")
    errors = {}
    for j, name in enumerate(JOINT_NAMES):
        parent = JOINT_NAMES[PARENTS[j]] if PARENTS[j] >= 0 else None
        if not name.endswith(limbs) or parent not in bone_index or name not in bone_index:
            continue
        a = heads[:, bone_index[name]] - heads[:, bone_index[parent]]
        b = source[:, j] - source[:, PARENTS[j]]
        cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        errors[name] = float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).max())
    return errors


# Bones whose direction a viewer judges: every SMPL bone from a joint to its one child along the body's chains
# (spine, neck, clavicles, arms, legs, feet). pelvis->hips and chest->clavicles are offsets that differ between rigs.
DIRECTION_BONES = tuple((p, c) for c, p in enumerate(PARENTS) if (p > 0 and p != 9) or (p, c) in ((0, 3), (9, 12)))


# A walk, a jump and a wave from the procedural corpus (training.corpus), fixed parameters and seed.
CORPUS_LABELS = {
    "walk": {"action": "walk", "params": {"speed": "normal", "duration": 4}},
    "jump": {"action": "jump", "params": {"direction": "forward", "count": 2, "height": "high"}},
    "wave": {"action": "wave", "params": {"side": "right", "count": 3, "amplitude": "big", "speed": "normal"}},
}


@functools.lru_cache(maxsize=None)
def corpus_motion(name: str) -> np.ndarray:
    """Joints (T, 22, 3), 20 fps, of one of CORPUS_LABELS (read only: cached)."""
    from training.corpus import Label, generate_clip

    label = Label.from_dict({"segments": [CORPUS_LABELS[name]]})
    joints = generate_clip(np.random.default_rng(0), label).joints.astype(np.float64)
    joints.flags.writeable = False
    return joints


def bone_direction_errors_deg(heads: np.ndarray, bone_index: dict[str, int], source: np.ndarray) -> np.ndarray:
    """Angles (T, K) between each mapped bone's direction on the target, head(j) -> head(child), and the source's
    j -> child, for the DIRECTION_BONES whose two joints are both mapped. heads: (T, B, 3); source: (T, 22, 3)."""
    from retarget.skeleton import JOINT_NAMES

    pairs = [(p, c) for p, c in DIRECTION_BONES if JOINT_NAMES[p] in bone_index and JOINT_NAMES[c] in bone_index]
    a = np.stack([heads[:, bone_index[JOINT_NAMES[c]]] - heads[:, bone_index[JOINT_NAMES[p]]] for p, c in pairs], 1)
    b = np.stack([source[:, c] - source[:, p] for p, c in pairs], 1)
    seen = np.linalg.norm(a, axis=-1).min(0) > 1e-6 * np.linalg.norm(a, axis=-1).max()  # CMU: LowerBack starts at Hips
    a, b = a[:, seen], b[:, seen]
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


# ------------------------------------------------------------------------------------------- joints -> rotations
from retarget.joints_to_rotations import global_to_local, joints_to_rotations  # noqa: E402
from retarget.skeleton import JOINT_NAMES  # noqa: E402


def test_rotations_reproduce_fk_joint_positions():
    joints, _ = random_fk_motion(60)
    glob = joints_to_rotations(joints)
    again, _ = forward_kinematics(global_to_local(glob), joints[:, 0])
    assert np.abs(again - joints).max() < 1e-6


def test_twist_of_a_bent_arm_comes_from_the_elbow_plane():
    frames = 30
    local = np.zeros((frames, NUM_JOINTS, 3))
    twist = np.linspace(-1.2, 1.2, frames)                        # upper arm turns about its own axis (+X)
    local[:, joint_index("left_shoulder"), 0] = twist
    local[:, joint_index("left_elbow"), 1] = -1.0                 # elbow bent ~57 degrees
    joints, true_glob = forward_kinematics(axis_angle_to_matrix(local), np.zeros((frames, 3)))
    glob = joints_to_rotations(joints)
    for name in ("left_shoulder", "left_elbow"):
        j = joint_index(name)
        # the twist sweeps 137 degrees; what is left is SMPL's rest kink between the two arm bones
        assert rotation_angle_deg(glob[:, j], true_glob[:, j]).max() < 2.0, name


def test_rotations_have_no_flips_while_limbs_straighten_and_the_body_spins():
    joints, true_glob = natural_arm_motion(80)
    glob = joints_to_rotations(joints)
    true_step = rotation_angle_deg(true_glob[1:], true_glob[:-1]).max()
    step = rotation_angle_deg(glob[1:], glob[:-1])
    worst = np.unravel_index(step.argmax(), step.shape)
    assert step.max() < true_step + 2.0, f"jump of {step.max():.1f} deg at frame {worst[0]}, {JOINT_NAMES[worst[1]]}"
    assert rotation_angle_deg(glob, true_glob).max() < 3.0  # no twist invented where the limbs are straight


def test_bad_joint_shape_is_rejected():
    import pytest

    with pytest.raises(ValueError, match=r"\(frames, 22, 3\)"):
        joints_to_rotations(np.zeros((10, 24, 3)))
