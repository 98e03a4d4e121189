"""Transfer onto numpy reference rigs: positions, directions, rest bones, root modes, ground, foot lock."""
from __future__ import annotations

import numpy as np
import pytest
from synthetic_walk import synthetic_walk
from test_retarget_joints import (
    CORPUS_LABELS, FPS, bone_direction_errors_deg, corpus_motion, direction_errors_deg, random_fk_motion, rotation_angle_deg,
)

from retarget.foot_lock import contact_spans, lock_goals, two_bone_ik
from retarget.rig import reference_layout, rig_from_bones
from retarget.rigmaps import RigMap, detect_rig_map, preset_rig_map
from retarget.rotations import axis_angle_to_matrix
from retarget.skeleton import NUM_JOINTS, REST_JOINTS, forward_kinematics, joint_index
from retarget.transfer import Y_UP_TO_Z_UP, RetargetOptions, joints_to_blender, pose_world, retarget

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
    assert error < 1e-3  # 1 mm; measured 1e-15 m


# Bone length factors for a cartoon character: long arms, short legs, a long back (other proportions than SMPL's).
CARTOON = {"arm": 1.3, "leg": 0.8, "spine": 1.25}


def _restretch(bones, factors):
    """Scale each bone's offset from its parent's head and its own length by the factor of its body part."""
    part = lambda name: next((k for k, words in (("arm", ("Arm", "Hand", "Shoulder")), ("leg", ("Leg", "Foot", "Toe")),  # noqa: E731
                                                   ("spine", ("Spine", "Neck", "Head"))) if any(w in name for w in words)), "")
    old = {b.name: (b.head.copy(), b.tail.copy()) for b in bones}
    new_heads = {}
    for b in bones:  # parents come first
        f = factors.get(part(b.name), 1.0)
        head, tail = old[b.name]
        new_heads[b.name] = head if not b.parent else new_heads[b.parent] + f * (head - old[b.parent][0])
        b.head, b.tail = new_heads[b.name], new_heads[b.name] + f * (tail - head)


def _direction_rig(kind: str):
    if kind == "a_pose_cartoon":  # Mixamo names, A-pose, cartoon proportions, random rolls
        bones, world = reference_layout("mixamo", a_pose=True)
        _restretch(bones, CARTOON)
        rig = rig_from_bones(bones, world)
        return rig, detect_rig_map(rig.bone_names)
    name, _, pose = kind.partition("_")
    return _rig(name, a_pose=pose == "a", rolls=name != "mixamo")


@pytest.mark.parametrize("kind", ["a_pose_cartoon", "mixamo", "vroid_a", "ue5", "cmu"])
@pytest.mark.parametrize("motion", sorted(CORPUS_LABELS))
def test_bone_directions_over_walk_jump_and_wave(kind, motion):
    """Every mapped bone points where the source bone points, with foot lock and ground snap on (the default)."""
    joints = corpus_motion(motion)
    rig, rig_map = _direction_rig(kind)
    if kind == "mixamo":
        assert rig.world_scale() == pytest.approx(0.01)
    anim = retarget(joints, rig, rig_map, RetargetOptions(), FPS)
    heads, index = _heads_of(rig, rig_map, anim)
    errors = bone_direction_errors_deg(heads, index, joints_to_blender(joints))
    assert errors.shape[1] >= 16
    assert np.median(errors) < 3.0 and errors.max() < 10.0, (np.median(errors), errors.max())


def test_a_pose_would_fail_without_rest_alignment():
    """Guard for the test above: keys solved for a T-pose rig, played on the A-pose rig, put the arms 40+ degrees off."""
    joints = corpus_motion("wave")
    t_pose, rig_map = _rig("mixamo")
    a_pose, _ = _rig("mixamo", a_pose=True)
    heads, index = _heads_of(a_pose, rig_map, retarget(joints, t_pose, rig_map, RetargetOptions(), FPS))
    assert bone_direction_errors_deg(heads, index, joints_to_blender(joints)).max() > 40.0


def _foot_points(rig, rig_map, anim):
    _, heads = pose_world(rig, anim)
    return heads[:, [rig.index(rig_map.bones[j]) for j in ("left_ankle", "right_ankle", "left_foot", "right_foot")]]


def skating_share(feet: np.ndarray, fps: float) -> float:
    """Share of stance frames (a foot point below 5 cm) in which that foot point slides faster than 0.5 m/s."""
    stance = feet[:-1, :, 2] < 0.05
    speed = np.linalg.norm(np.diff(feet[..., :2], axis=0), axis=-1) * fps
    return float((stance & (speed > 0.5)).sum() / stance.sum())


def trembling_walk(sigma: float) -> np.ndarray:
    """The corpus walk with each foot (ankle and toes together) shaken horizontally, as generated motion does."""
    joints = corpus_motion("walk").copy()
    shake = np.random.default_rng(1).normal(0.0, sigma, (len(joints), 2, 2))
    for k, ids in enumerate(((7, 10), (8, 11))):
        for i in ids:
            joints[:, i, [0, 2]] += shake[:, k]  # X and Z are horizontal in SMPL's frame
    return joints


@pytest.mark.parametrize("sigma", [0.0, 0.015])
def test_foot_lock_on_a_corpus_walk(sigma):
    joints = trembling_walk(sigma)
    rig, rig_map = _rig("mixamo", a_pose=True)
    before = skating_share(_foot_points(rig, rig_map, retarget(joints, rig, rig_map, RetargetOptions(foot_lock=False), FPS)), FPS)
    feet = _foot_points(rig, rig_map, retarget(joints, rig, rig_map, RetargetOptions(), FPS))
    after = skating_share(feet, FPS)
    if sigma:
        assert before > 0.2  # the test has something to clean up (measured 35 %)
    assert after < 0.01, (before, after)
    assert feet[..., 2].min() > -0.005  # no foot below the ground by more than 5 mm


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


def test_duplicated_bone_names_are_an_error_naming_them():
    bones, world = reference_layout("mixamo")
    names = [b.name for b in bones]
    names[names.index("LeftFoot")] = "LeftLeg"
    rig = rig_from_bones(bones, world)
    with pytest.raises(ValueError, match=r"several bones named 'LeftLeg'"):
        type(rig)(names, rig.parents, rig.rest_matrices, rig.world_matrix)


def test_one_bone_for_two_joints_is_an_error_naming_it():
    joints, _ = random_fk_motion(5)
    rig, rig_map = _rig("smpl")
    bad = RigMap(name="mine", bones={**rig_map.bones, "left_foot": rig_map.bones["left_ankle"]})
    with pytest.raises(ValueError, match=r"bone 'left_ankle' is mapped to several joints \(left_ankle, left_foot\)"):
        retarget(joints, rig, bad, EXACT, FPS)


@pytest.mark.parametrize("scale", [(1.0, 2.0, 1.0), (-1.0, 1.0, 1.0)])
def test_non_uniform_or_negative_object_scale_is_refused_with_the_fix(scale):
    joints, _ = random_fk_motion(5)
    rig, rig_map = _rig("smpl")
    rig.world_matrix = np.diag([*scale, 1.0])
    with pytest.raises(ValueError, match=r"non-uniform or negative scale .*Ctrl\+A > Scale"):
        retarget(joints, rig, rig_map, EXACT, FPS)


def test_constraints_on_keyed_bones_are_named_in_a_warning():
    joints, _ = random_fk_motion(5)
    rig, rig_map = _rig("mixamo")
    assert retarget(joints, rig, rig_map, EXACT, FPS).warnings == []
    rig.constraints = {"LeftForeArm": ["IK"], "LeftHandIndex1": ["Copy Rotation"]}  # the second bone is not keyed
    warnings = retarget(joints, rig, rig_map, EXACT, FPS).warnings
    assert len(warnings) == 1 and "'LeftForeArm' (IK)" in warnings[0] and "LeftHandIndex1" not in warnings[0]


def test_a_bone_that_copies_another_moves_with_it():
    """Rigify's ORG-shoulder copies the shoulder control and the arm hangs below ORG-shoulder: the arm must follow the
    control, not ORG-shoulder's parent. Modelled with an extra bone on the SMPL rig (pose_world applies the copy)."""
    from retarget.rig import BoneSpec

    joints, _ = random_fk_motion(20, seed=4)
    bones, world = reference_layout("smpl")
    collar = next(b for b in bones if b.name == "left_collar")
    bones.append(BoneSpec("ORG-collar", "spine3", collar.head.copy(), collar.tail.copy()))
    next(b for b in bones if b.name == "left_shoulder").parent = "ORG-collar"
    rig = rig_from_bones(bones, world)
    rig.copies = {"ORG-collar": "left_collar"}
    unaware = rig_from_bones(bones, world)  # the same rig, its constraint unknown to the retargeter
    rig_map = preset_rig_map("smpl", rig.bone_names)
    errors = {}
    for name, solved_for in (("aware", rig), ("unaware", unaware)):
        heads, index = _heads_of(rig, rig_map, retarget(joints, solved_for, rig_map, EXACT, FPS))
        errors[name] = bone_direction_errors_deg(heads, index, joints_to_blender(joints)).max()
    assert errors["aware"] < 0.01 and errors["unaware"] > 5.0, errors


def test_twist_comes_from_the_smpl_pose_where_joints_cannot_tell_it():
    """A forearm rolls (pronation) about its own axis: the joints do not move, the SMPL pose knows the roll."""
    frames = 40
    pose = np.zeros((frames, 24, 3))
    elbow, wrist = joint_index("left_elbow"), joint_index("left_wrist")
    forearm = REST_JOINTS[wrist] - REST_JOINTS[elbow]
    roll = np.linspace(0.0, 1.4, frames)[:, None] * forearm / np.linalg.norm(forearm)  # up to 80 degrees
    bend = np.array([0.0, -0.3, 0.0])  # a slightly bent elbow (17 degrees): its hinge fixes little
    local = axis_angle_to_matrix(np.zeros((frames, NUM_JOINTS, 3)))
    local[:, elbow] = axis_angle_to_matrix(bend) @ axis_angle_to_matrix(roll)
    pose[:, elbow] = _matrix_to_axis_angle(local[:, elbow])
    pose[:, 0] = [0.0, 0.4, 0.0]
    local[:, 0] = axis_angle_to_matrix(pose[:, 0])
    joints, true_glob = forward_kinematics(local, np.repeat(REST_JOINTS[None, 0], frames, 0))

    rig, rig_map = _rig("smpl", rolls=True)
    bone = rig.index(rig_map.bones["left_elbow"])
    expected = Y_UP_TO_Z_UP @ true_glob[:, elbow] @ Y_UP_TO_Z_UP.T
    rest = rig.rest_matrices[bone, :3, :3]
    errors = {}
    for given in (None, pose, {"global_orient": pose[:, 0], "body_pose": pose[:, 1:].reshape(frames, 69)}):
        rot, heads = pose_world(rig, retarget(joints, rig, rig_map, EXACT, FPS, smpl_pose=given))
        errors[given is None] = rotation_angle_deg(rot[:, bone] @ rest.T, expected).max()
        index = {j: rig.index(b) for j, b in rig_map.bones.items()}
        assert np.abs(heads[:, index["left_wrist"]] - joints_to_blender(joints)[:, wrist]).max() < 1e-6  # joints still win
    assert errors[False] < 5.0  # measured 0.0 degrees
    assert errors[True] > 40.0  # joints alone cannot see the roll


def _matrix_to_axis_angle(m):
    from retarget.rotations import matrix_to_quat, quat_to_axis_angle

    return quat_to_axis_angle(matrix_to_quat(m))


def test_bad_smpl_pose_is_an_error():
    joints, _ = random_fk_motion(6)
    rig, rig_map = _rig("smpl")
    with pytest.raises(ValueError, match=r"smpl_pose has 5 frames but the joints have 6"):
        retarget(joints, rig, rig_map, EXACT, FPS, smpl_pose=np.zeros((5, 24, 3)))
    with pytest.raises(ValueError, match=r"axis-angle \(frames, 24, 3\)"):
        retarget(joints, rig, rig_map, EXACT, FPS, smpl_pose=np.zeros((6, 10, 3)))
    with pytest.raises(ValueError, match=r"needs global_orient and body_pose"):
        retarget(joints, rig, rig_map, EXACT, FPS, smpl_pose={"betas": np.zeros(10)})
