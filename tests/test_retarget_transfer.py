"""Transfer onto numpy reference rigs: positions, directions, rest bones, root modes, ground, foot lock."""
from __future__ import annotations

import numpy as np
import pytest
from synthetic_walk import synthetic_walk
from test_retarget_joints import FPS, direction_errors_deg, random_fk_motion

from retarget.foot_lock import contact_spans, lock_goals, two_bone_ik
from retarget.rig import reference_layout, rig_from_bones
from retarget.rigmaps import RigMap, detect_rig_map, preset_rig_map
from retarget.transfer import RetargetOptions, joints_to_blender, pose_world, retarget

EXACT = RetargetOptions(foot_lock=False, ground_snap=False)


def _rig(name: str, a_pose: bool = False, rolls: bool = False):
    bones, world = reference_layout(name, a_pose)
    if rolls:
        rng = np.random.default_rng(7)
        for b in bones:
            b.roll = rng.uniform(-np.pi, np.pi)
    rig = rig_from_bones(bones, world)
    return rig, detect_rig_map(rig.bone_names)


def _heads_of(rig, rig_map, anim):
    _, heads = pose_world(rig, anim)
    return heads, {j: rig.index(b) for j, b in rig_map.bones.items()}


def test_smpl_rig_with_random_rolls_reproduces_the_joints():
    joints, _ = random_fk_motion(50)
    rig, rig_map = _rig("smpl", rolls=True)
    heads, index = _heads_of(rig, rig_map, retarget(joints, rig, rig_map, EXACT, FPS))
    source = joints_to_blender(joints)
    error = max(np.linalg.norm(heads[:, index[j]] - source[:, k], axis=-1).max() for k, j in enumerate(rig_map.bones))
    assert error < 1e-4


def test_naive_copy_would_fail_on_rolled_bones():
    """Guard for the test above: local rotations copied without rest compensation put joints far off."""
    joints, _ = random_fk_motion(20)
    plain, rig_map = _rig("smpl")
    rolled, _ = _rig("smpl", rolls=True)
    anim = retarget(joints, plain, rig_map, EXACT, FPS)
    heads, index = _heads_of(rolled, rig_map, anim)
    source = joints_to_blender(joints)
    assert np.linalg.norm(heads[:, index["left_wrist"]] - source[:, 20], axis=-1).max() > 0.05


@pytest.mark.parametrize("name,a_pose", [("mixamo", False), ("mixamo", True), ("vroid", True), ("ue5", True), ("cmu", False)])
def test_limb_directions_match_on_other_rigs(name, a_pose):
    joints, _ = random_fk_motion(50, seed=3)
    rig, rig_map = _rig(name, a_pose=a_pose, rolls=name != "mixamo")
    heads, index = _heads_of(rig, rig_map, retarget(joints, rig, rig_map, EXACT, FPS))
    errors = direction_errors_deg(heads, index, joints_to_blender(joints))
    assert len(errors) == 12
    assert max(errors.values()) < 5.0, errors


def test_unmapped_bones_stay_at_rest_and_ride_with_their_mapped_ancestor():
    joints, _ = random_fk_motion(30)
    rig, rig_map = _rig("ue5")
    anim = retarget(joints, rig, rig_map, EXACT, FPS)
    mapped = set(rig_map.bones.values())
    unmapped = [i for i, n in enumerate(rig.bone_names) if n not in mapped]
    assert len(unmapped) == 43
    assert np.abs(anim.rotations[:, unmapped] - [1, 0, 0, 0]).max() < 1e-9
    assert np.abs(anim.locations[:, unmapped]).max() == 0.0
    rotations, _ = pose_world(rig, anim)
    pelvis, spine_01 = rig.index("pelvis"), rig.index("spine_01")
    rest = rig.rest_matrices[:, :3, :3]
    carried = rotations[:, pelvis] @ rest[pelvis].T @ rest[spine_01]
    assert np.abs(carried - rotations[:, spine_01]).max() < 1e-9


def _walk(drift_per_frame: float = 0.0):
    joints, left, right = synthetic_walk(steps=8)
    joints = joints.astype(np.float64)
    # generated motions skate: planted feet creep sideways through each contact
    for mask, ids, sign in ((left, (7, 10), 1.0), (right, (8, 11), -1.0)):
        creep = np.cumsum(mask) * drift_per_frame * sign
        joints[:, ids, 0] += creep[:, None]
    return joints, left, right


def test_root_modes():
    joints, _, _ = _walk()
    rig, rig_map = _rig("ue5")
    hips = rig.index("pelvis")
    travel = retarget(joints, rig, rig_map, RetargetOptions(root_mode="travel"), FPS)
    _, heads_travel = pose_world(rig, travel)
    assert np.ptp(heads_travel[:, hips, 1]) > 1.0  # walks 1.6 m towards -Y (forward in Blender)

    in_place = retarget(joints, rig, rig_map, RetargetOptions(root_mode="in_place"), FPS)
    _, heads = pose_world(rig, in_place)
    assert np.ptp(heads[:, hips, 1]) < 0.1
    assert np.ptp(heads[:, hips, 2]) == pytest.approx(np.ptp(heads_travel[:, hips, 2]), abs=1e-6)  # bob kept

    rooted = retarget(joints, rig, rig_map, RetargetOptions(root_mode="root_bone"), FPS)
    _, heads = pose_world(rig, rooted)
    root = rig.index("root")
    body = [b for b in range(len(rig.bone_names)) if rig.bone_names[b] not in ("root", "ik_foot_root")]
    assert np.abs(heads[:, body] - heads_travel[:, body]).max() < 1e-6  # same body motion, only split differently
    assert np.ptp(heads[:, root, 1]) > 1.0 and np.abs(heads[:, root, 2]).max() < 1e-9
    assert np.abs(rooted.locations[:, hips, :]).max() < 0.3   # hips keep only the sway around the root

    mixamo, mixamo_map = _rig("mixamo")
    with pytest.raises(ValueError, match="root bone above the hips bone 'Hips'"):
        retarget(joints, mixamo, mixamo_map, RetargetOptions(root_mode="root_bone"), FPS)
    with pytest.raises(ValueError, match="unknown root mode 'fly'"):
        retarget(joints, mixamo, mixamo_map, RetargetOptions(root_mode="fly"), FPS)


def test_stride_scales_with_leg_length():
    joints, _, _ = _walk()
    rig, rig_map = _rig("smpl")
    rig.world_matrix = np.diag([1.5, 1.5, 1.5, 1.0])  # a character half again as tall
    _, heads = pose_world(rig, retarget(joints, rig, rig_map, EXACT, FPS))
    travel = np.ptp(heads[:, rig.index("pelvis"), 1])
    assert travel == pytest.approx(1.5 * np.ptp(joints[:, 0, 2]), rel=1e-6)


def test_ground_snap_puts_the_lowest_foot_point_on_the_ground():
    joints, _, _ = _walk()
    joints[..., 1] += 0.3  # the whole take floats 30 cm up
    rig, rig_map = _rig("mixamo", a_pose=True)
    feet = [rig.index(rig_map.bones[j]) for j in ("left_ankle", "right_ankle", "left_foot", "right_foot")]
    rest_heights = rig.rest_heads_world()[feet, 2]
    for snap, expected in ((False, 0.3), (True, 0.0)):
        anim = retarget(joints, rig, rig_map, RetargetOptions(foot_lock=False, ground_snap=snap), FPS)
        _, heads = pose_world(rig, anim)
        assert (heads[:, feet, 2] - rest_heights).min() == pytest.approx(expected, abs=2e-3)


def _planted_slide(rig, rig_map, anim, planted: dict[str, np.ndarray]) -> float:
    """Worst horizontal travel of an ankle inside a planted span, from the span's first frame (metres)."""
    _, heads = pose_world(rig, anim)
    worst = 0.0
    for joint, mask in planted.items():
        ankle = heads[:, rig.index(rig_map.bones[joint]), :2]
        for start, end in contact_spans(mask):
            if end - start >= 3:  # span ends belong to the blend in and out
                span = ankle[start + 1:end - 1]
                worst = max(worst, float(np.linalg.norm(span - span[:1], axis=-1).max()))
    return worst


def test_foot_lock_stops_planted_feet_sliding():
    joints, left, right = _walk(drift_per_frame=0.006)
    planted = {"left_ankle": left, "right_ankle": right}
    rig, rig_map = _rig("mixamo", a_pose=True)
    sliding = _planted_slide(rig, rig_map, retarget(joints, rig, rig_map, RetargetOptions(foot_lock=False), FPS), planted)
    locked = _planted_slide(rig, rig_map, retarget(joints, rig, rig_map, RetargetOptions(foot_lock=True), FPS), planted)
    assert sliding > 0.02
    assert locked < 0.01


def test_lock_blends_in_and_out():
    positions = np.zeros((30, 3))
    positions[:, 0] = np.linspace(0.0, 0.3, 30)
    contact = np.zeros(30, bool)
    contact[10:20] = True
    goals, weights = lock_goals(positions, contact, FPS)
    assert weights[10:20].min() == 1.0 and weights[:5].max() == 0.0 and weights[25:].max() == 0.0
    assert 0.0 < weights[8] < 1.0 and 0.0 < weights[21] < 1.0
    assert np.ptp(goals[10:20, 0]) == 0.0


def test_two_bone_ik_reaches_and_keeps_lengths():
    rng = np.random.default_rng(2)
    root = rng.normal(size=(100, 3))
    mid = root + rng.normal(size=(100, 3)) * 0.1 + [0, 0, -0.4]
    end = mid + rng.normal(size=(100, 3)) * 0.1 + [0, 0, -0.4]
    goal = end + rng.normal(size=(100, 3)) * 0.05
    new_mid, new_end = two_bone_ik(root, mid, end, goal)
    reachable = np.linalg.norm(goal - root, axis=-1) < np.linalg.norm(mid - root, axis=-1) + np.linalg.norm(end - mid, axis=-1)
    assert np.abs(np.linalg.norm(new_mid - root, axis=-1) - np.linalg.norm(mid - root, axis=-1)).max() < 1e-9
    assert np.abs(np.linalg.norm(new_end - new_mid, axis=-1) - np.linalg.norm(end - mid, axis=-1)).max() < 1e-9
    assert np.linalg.norm(new_end - goal, axis=-1)[reachable].max() < 1e-5


def test_rig_without_hips_bone_is_an_error_naming_it():
    joints, _ = random_fk_motion(5)
    bones, world = reference_layout("mixamo")
    bones = [b for b in bones if b.name != "Hips"]
    for b in bones:
        b.parent = "" if b.parent == "Hips" else b.parent
    rig = rig_from_bones(bones, world)
    rig_map = detect_rig_map(rig.bone_names)
    assert rig_map.name == "mixamo" and rig_map.missing == ["pelvis"]
    with pytest.raises(ValueError, match=r"pelvis \(hips, e\.g\. 'Hips'\)"):
        retarget(joints, rig, rig_map, EXACT, FPS)


def test_map_naming_bones_the_rig_lacks_is_an_error():
    joints, _ = random_fk_motion(5)
    rig, _ = _rig("smpl")
    bad = preset_rig_map("smpl", rig.bone_names)
    bad = RigMap(name="mine", bones={**bad.bones, "left_knee": "Knee.L"})
    with pytest.raises(ValueError, match=r"left_knee -> 'Knee\.L'"):
        retarget(joints, rig, bad, EXACT, FPS)
