"""The retargeter inside real Blender (the bpy wheel): what an animator sees after the keys are written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_retarget_joints import CORPUS_LABELS, FPS, bone_direction_errors_deg, corpus_motion, direction_errors_deg, random_fk_motion

bpy = pytest.importorskip("bpy")

from backend.cli.main import main  # noqa: E402
from backend.motion.io import Motion, save_motion  # noqa: E402
from retarget import blender_compat  # noqa: E402
from retarget.blender_io import build_preset_rig, rig_from_armature, switch_rigify_to_fk, write_action  # noqa: E402
from retarget.rig import reference_layout  # noqa: E402
from retarget.rigmaps import PRESETS, detect_rig_map, preset_rig_map  # noqa: E402
from retarget.transfer import RetargetOptions, joints_to_blender, retarget  # noqa: E402

pytestmark = pytest.mark.slow
EXACT = RetargetOptions(foot_lock=False, ground_snap=False)
CMU_BVH = Path("/usr/share/assimp/models/BVH/01_01.bvh")  # Debian's assimp-testmodels


@pytest.fixture(autouse=True)
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield


def _apply(obj, joints, options=EXACT):
    rig = rig_from_armature(obj)
    rig_map = detect_rig_map(rig.bone_names)
    anim = retarget(joints, rig, rig_map, options, FPS)
    write_action(obj, anim, "take")
    return rig_map, anim


def _world_heads(obj, names: list[str], frames) -> np.ndarray:
    """Bone heads in world space as Blender evaluates them, (F, N, 3)."""
    out = []
    for frame in frames:
        bpy.context.scene.frame_set(frame + 1)
        world = obj.matrix_world
        out.append([tuple(world @ obj.pose.bones[n].head) for n in names])
    return np.array(out)


def test_smpl_preset_with_random_rolls_reproduces_the_joints_within_a_millimetre():
    joints, _ = random_fk_motion(40)
    obj = build_preset_rig("smpl")
    rng = np.random.default_rng(3)
    bpy.ops.object.mode_set(mode="EDIT")
    for edit in obj.data.edit_bones:
        edit.roll = rng.uniform(-np.pi, np.pi)
    bpy.ops.object.mode_set(mode="OBJECT")
    rig_map, _ = _apply(obj, joints)
    frames = range(0, 40, 3)
    heads = _world_heads(obj, [rig_map.bones[j] for j in PRESETS["smpl"].bones], frames)
    error = np.linalg.norm(heads - joints_to_blender(joints)[list(frames)], axis=-1)
    assert error.max() < 0.001


def _evaluated_heads(obj, names: list[str], frames) -> np.ndarray:
    """Bone heads in world space after Blender evaluated constraints and drivers, (F, N, 3)."""
    out = []
    for frame in frames:
        bpy.context.scene.frame_set(frame + 1)
        pose = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).pose
        out.append([tuple(obj.matrix_world @ pose.bones[n].head) for n in names])
    return np.array(out)


def _corpus_direction_errors(obj, rig_map, seen_map=None) -> dict[str, tuple[float, float]]:
    """Per corpus motion, (median, max) angle between each bone seen in Blender and the source bone, degrees.
    seen_map: the bones that show the body, where the keyed ones (rig_map) are controls."""
    seen_map = seen_map or rig_map
    rig = rig_from_armature(obj)
    names = list(seen_map.bones.values())
    index = {j: names.index(b) for j, b in seen_map.bones.items()}
    result = {}
    for motion in sorted(CORPUS_LABELS):
        joints = corpus_motion(motion)
        write_action(obj, retarget(joints, rig, rig_map, RetargetOptions(), FPS), motion)
        frames = list(range(0, len(joints), 3))
        errors = bone_direction_errors_deg(_evaluated_heads(obj, names, frames), index, joints_to_blender(joints)[frames])
        assert errors.shape[1] >= 15  # 17 bones; CMU's LowerBack and Neck1 start where their parents start
        result[motion] = (float(np.median(errors)), float(errors.max()))
    return result


def _assert_directions(result):
    for motion, (median, worst) in result.items():
        assert median < 3.0 and worst < 10.0, (motion, median, worst)


def _direction_errors(obj, rig_map, joints, frames):
    names = list(rig_map.bones.values())
    heads = _world_heads(obj, names, frames)
    index = {j: names.index(b) for j, b in rig_map.bones.items()}
    return direction_errors_deg(heads, index, joints_to_blender(joints)[list(frames)])


def test_mixamo_rig_in_centimetres_with_rolled_bones():
    bones, _ = reference_layout("mixamo")
    assert max(abs(b.roll) for b in bones) > 2.5  # the rig really has wild rolls
    joints, _ = random_fk_motion(40, seed=5)
    obj = build_preset_rig("mixamo")
    assert tuple(obj.scale) == pytest.approx((0.01, 0.01, 0.01))
    rig_map, anim = _apply(obj, joints)
    assert rig_map.name == "mixamo"
    errors = _direction_errors(obj, rig_map, joints, range(0, 40, 3))
    assert len(errors) == 12 and max(errors.values()) < 5.0, errors

    unmapped = ["HeadTop_End", "LeftHandIndex1", "RightHandIndex1", "LeftToe_End", "RightToe_End"]
    keyed = {fc.data_path.split('"')[1] for fc in blender_compat.action_fcurves(obj.animation_data.action, obj)}
    assert keyed.isdisjoint(unmapped)
    for frame in (5, 25):
        bpy.context.scene.frame_set(frame)
        for name in unmapped:
            pose_bone = obj.pose.bones[name]
            assert np.allclose(np.array(pose_bone.matrix_basis), np.eye(4), atol=1e-6)
            rest_offset = pose_bone.bone.parent.matrix_local.inverted() @ pose_bone.bone.matrix_local
            posed_offset = pose_bone.parent.matrix.inverted() @ pose_bone.matrix
            assert np.allclose(np.array(rest_offset), np.array(posed_offset), atol=1e-4)


def test_a_pose_rig_gets_the_same_bone_directions():
    joints, _ = random_fk_motion(40, seed=6)
    obj = build_preset_rig("vroid", a_pose=True)
    arm = obj.data.bones["J_Bip_L_UpperArm"]
    droop = np.degrees(np.arcsin(-(arm.tail_local - arm.head_local).normalized().z))
    assert droop > 40.0  # SMPL's rest arm already slopes 6 degrees; the A-pose adds 45
    rig_map, _ = _apply(obj, joints)
    errors = _direction_errors(obj, rig_map, joints, range(0, 40, 3))
    assert max(errors.values()) < 5.0, errors


def test_rigify_metarig_over_walk_jump_and_wave():
    obj = build_preset_rig("rigify")
    rig_map = detect_rig_map(rig_from_armature(obj).bone_names)
    assert rig_map.name == "rigify" and rig_map.missing == []
    _assert_directions(_corpus_direction_errors(obj, rig_map))


def test_generated_rigify_fk_controls_and_def_bones():
    """The rig Rigify generates: keys on its FK controls (limbs switched to FK), judged on the DEF bones that deform
    the mesh. Its DEF bones follow constraints: keyed directly (the rigify preset) they draw a warning naming them."""
    build_preset_rig("rigify")
    bpy.ops.pose.rigify_generate()
    obj = bpy.data.objects["rig"]
    names = rig_from_armature(obj).bone_names
    deform = preset_rig_map("rigify", names)
    warnings = retarget(corpus_motion("wave"), rig_from_armature(obj), deform, RetargetOptions(), FPS).warnings
    assert len(warnings) == 1 and "'DEF-spine' (Copy Transforms, Stretch To)" in warnings[0]

    switched = switch_rigify_to_fk(obj)
    assert 'upper_arm_parent.L["IK_FK"]' in switched and 'torso["head_follow"]' in switched
    controls = detect_rig_map(names)
    assert controls.name == "rigify_fk" and controls.missing == []
    assert retarget(corpus_motion("wave"), rig_from_armature(obj), controls, RetargetOptions(), FPS).warnings == []
    _assert_directions(_corpus_direction_errors(obj, controls, seen_map=deform))


@pytest.mark.skipif(not CMU_BVH.is_file(), reason="needs Debian's assimp-testmodels (CMU 01_01.bvh)")
def test_cmu_skeleton_from_a_bvh_file():
    bpy.ops.import_anim.bvh(filepath=str(CMU_BVH))
    obj = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    rig_map = detect_rig_map(rig_from_armature(obj).bone_names)
    assert rig_map.name == "cmu" and rig_map.missing == []
    _assert_directions(_corpus_direction_errors(obj, rig_map))


def test_detection_on_every_preset_rig():
    for name in ("smpl", "mixamo", "rigify", "ue5", "vroid", "cmu"):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        obj = build_preset_rig(name)
        assert detect_rig_map(rig_from_armature(obj).bone_names).name == name


def test_action_keys_and_slot_binding():
    joints, _ = random_fk_motion(25)
    obj = build_preset_rig("ue5")
    rig_map, anim = _apply(obj, joints, RetargetOptions(root_mode="root_bone"))
    action = obj.animation_data.action
    if blender_compat.SLOTTED_ACTIONS:
        assert obj.animation_data.action_slot is not None
    curves = blender_compat.action_fcurves(action, obj)
    keyed = {fc.data_path.split('"')[1] for fc in curves}
    # mapped bones and the root turn, root and pelvis translate; wrists, toes and head follow their parents
    # exactly (SMPL has no joint below them) and unmapped bones stay at rest: none of these get keys
    assert keyed == set(rig_map.bones.values()) - {"hand_l", "hand_r", "ball_l", "ball_r", "head"} | {"root"}
    assert len(curves) == 4 * len(keyed) + 3 * 2
    assert {len(fc.keyframe_points) for fc in curves} == {25}
    assert action.frame_range[:] == pytest.approx((1.0, 25.0))
    # the same action on a second rig: without an explicit slot binding Blender 4.4+ would not play it
    other = build_preset_rig("ue5")
    blender_compat.assign_action(other, action)
    bpy.context.scene.frame_set(10)
    assert np.allclose(np.array(other.pose.bones["thigh_l"].matrix), np.array(obj.pose.bones["thigh_l"].matrix), atol=1e-5)


def _save(tmp_path, frames=30):
    joints, _ = random_fk_motion(frames, seed=2)
    return str(save_motion(tmp_path / "take.npz", Motion(joints=joints.astype(np.float32), fps=FPS)))


def test_cli_writes_an_fbx_that_reimports(tmp_path):
    motion = _save(tmp_path, 30)
    out = tmp_path / "out" / "take.fbx"
    assert main(["retarget", motion, "--rig", "mixamo", "--out", str(out)]) == 0
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(out))
    armature = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    expected = {b.name for b in reference_layout("mixamo")[0]}
    assert {b.name for b in armature.data.bones} == expected
    assert len(bpy.data.actions) == 1
    start, end = armature.animation_data.action.frame_range
    assert round(end - start) + 1 == 30


def test_cli_bvh_out_and_bvh_in(tmp_path):
    motion = _save(tmp_path, 24)
    bvh = tmp_path / "take.bvh"
    assert main(["retarget", motion, "--rig", "cmu", "--out", str(bvh), "--no-foot-lock"]) == 0
    assert main(["retarget", motion, "--rig", str(bvh), "--out", str(tmp_path / "again.glb")]) == 0
    assert (tmp_path / "again.glb").stat().st_size > 1000
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=str(bvh))
    armature = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert "LHipJoint" in armature.data.bones
    start, end = armature.animation_data.action.frame_range
    assert round(end - start) + 1 == 24


def test_cli_armature_without_hips_names_the_missing_bone(tmp_path, capsys):
    obj = build_preset_rig("mixamo")
    bpy.ops.object.mode_set(mode="EDIT")
    obj.data.edit_bones.remove(obj.data.edit_bones["Hips"])
    bpy.ops.object.mode_set(mode="OBJECT")
    target = tmp_path / "no_hips.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(target))
    motion = _save(tmp_path, 10)
    assert main(["retarget", motion, "--rig", str(target), "--out", str(tmp_path / "x.fbx")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "pelvis (hips, e.g. 'Hips')" in err


def test_cli_user_errors(tmp_path, capsys):
    motion = _save(tmp_path, 10)
    bad_map = tmp_path / "map.json"
    bad_map.write_text("{oops")
    cases = [
        (["--rig", "smpl", "--out", str(tmp_path / "x.fbx"), "--preset", "nope"], "unknown rig preset 'nope'"),
        (["--rig", "smpl", "--out", str(tmp_path / "x.fbx"), "--map", str(bad_map)], "not valid JSON"),
        (["--rig", "robot", "--out", str(tmp_path / "x.fbx")], "--rig must be a preset"),
        (["--rig", "smpl", "--out", str(tmp_path / "x.obj")], "--out must end in one of"),
    ]
    for extra, message in cases:
        assert main(["retarget", motion, *extra]) == 2
        assert message in " ".join(capsys.readouterr().err.split())


def test_cli_scale_constraints_and_smpl_twist(tmp_path, capsys):
    joints, _ = random_fk_motion(12, seed=2)
    pose = np.zeros((12, 24, 3), np.float32)
    motion = str(save_motion(tmp_path / "take.npz", Motion(joints=joints.astype(np.float32), fps=FPS, smpl={
        "global_orient": pose[:, 0], "body_pose": pose[:, 1:].reshape(12, 69), "betas": np.zeros(10, np.float32)})))
    obj = build_preset_rig("mixamo")
    obj.scale = (0.01, 0.02, 0.01)
    stretched = tmp_path / "stretched.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(stretched))
    assert main(["retarget", motion, "--rig", str(stretched), "--out", str(tmp_path / "x.fbx")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "non-uniform or negative scale (0.01, 0.02, 0.01)" in err and "Ctrl+A > Scale" in err

    bpy.ops.wm.open_mainfile(filepath=str(stretched))  # the command replaced the scene: look the rig up again
    obj = bpy.data.objects["mixamo_rig"]
    obj.scale = (0.01, 0.01, 0.01)
    obj.pose.bones["LeftForeArm"].constraints.new("DAMPED_TRACK")
    constrained = tmp_path / "constrained.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(constrained))
    assert main(["retarget", motion, "--rig", str(constrained), "--out", str(tmp_path / "x.bvh")]) == 0
    out = capsys.readouterr()
    assert "'LeftForeArm' (Damped Track)" in " ".join(out.err.split())
    assert "twist from the SMPL pose" in " ".join(out.out.split())
