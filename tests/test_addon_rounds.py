"""Rounds in the real bpy wheel: one Action per round, preview, accept, reject, re-apply, export."""
from __future__ import annotations

import numpy as np
import pytest

from test_addon_support import add_round, addon, fcurve_frames, settings, staged_addon, walk_joints  # noqa: F401

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.slow


def preview_rig(addon, preset: str = "smpl") -> str:
    from irg_motion.retarget.blender_io import build_preset_rig

    return build_preset_rig(preset).name


def shown(name: str) -> str:
    adt = bpy.data.objects[name].animation_data
    return adt.action.name if adt and adt.action else ""


def bound_slot(name: str):
    """The slot the armature plays (4.4+); before slotted actions an assigned action always plays."""
    adt = bpy.data.objects[name].animation_data
    return adt.action_slot if hasattr(adt, "action_slot") else adt.action


def hips_travel(action_name: str, hips: str) -> float:
    """The longest distance the hips location keys cover along one of the bone's axes."""
    from irg_motion.retarget.blender_compat import action_fcurves

    path = f'pose.bones["{hips}"].location'
    curves = action_fcurves(bpy.data.actions[action_name])
    xy = []
    for index in (0, 1, 2):
        curve = next(c for c in curves if c.data_path == path and c.array_index == index)
        xy.append([k.co[1] for k in curve.keyframe_points])
    xy = np.array(xy)
    return float(np.ptp(xy, axis=1).max())


@pytest.mark.parametrize("preset", ["smpl", "mixamo"])
def test_each_round_is_an_action_bound_to_the_armature(addon, preset):
    rig = preview_rig(addon, preset)
    add_round(addon, rig, index=0, joints=walk_joints(40))
    add_round(addon, rig, index=1, joints=walk_joints(60))

    names = [e.action for e in settings().rounds]
    assert len(set(names)) == 2 and all(n in bpy.data.actions for n in names)
    assert [fcurve_frames(bpy.data.actions[n]) for n in names] == [40, 60]
    assert shown(rig) == names[1]  # the newest round is previewed
    assert bound_slot(rig) is not None
    assert not any(e.error for e in settings().rounds)


def test_preview_is_non_destructive_and_reject_restores(addon):
    rig = preview_rig(addon)
    obj = bpy.data.objects[rig]
    original = bpy.data.actions.new("Animator's idle")
    addon.compat.assign_action(obj, original)
    # the animator's own keys: one on the hips
    obj.pose.bones[0].keyframe_insert("location", frame=1)

    add_round(addon, rig, index=0)
    add_round(addon, rig, index=1)
    first, second = (e.action for e in settings().rounds)
    assert shown(rig) == second

    assert bpy.ops.irg_motion.reject() == {"FINISHED"}  # the selected round: the newest
    assert shown(rig) == first and second not in bpy.data.actions
    restored = addon.rounds.reject(settings(), 0)
    assert restored == "Animator's idle" and shown(rig) == "Animator's idle"
    assert first not in bpy.data.actions and len(settings().rounds) == 0
    assert bound_slot(rig) is not None


def test_accept_keeps_one_take_and_drops_the_jobs_other_rounds(addon):
    rig = preview_rig(addon)
    for i in range(3):
        add_round(addon, rig, job="job-a", index=i)
    add_round(addon, rig, job="job-b", index=0)
    s = settings()
    kept = s.rounds[1].action
    other_job = s.rounds[3].action
    dropped = [s.rounds[0].action, s.rounds[2].action]

    s.accept_as_nla = True
    s.rounds_index = 1  # selecting a round previews it
    assert shown(rig) == kept
    assert bpy.ops.irg_motion.accept() == {"FINISHED"}
    action = bpy.data.actions[kept]
    assert action.use_fake_user and action["irg_status"] == "accepted"
    assert not any(n in bpy.data.actions for n in dropped)
    assert other_job in bpy.data.actions  # another job's rounds are not this job's to drop
    assert [e.action for e in s.rounds] == [kept, other_job]
    assert shown(rig) == kept
    strips = [st.action.name for t in bpy.data.objects[rig].animation_data.nla_tracks for st in t.strips]
    assert strips == [kept]
    assert addon.rounds.accepted_action(s, rig) == kept
    with pytest.raises(addon.rounds.RoundError):
        addon.rounds.reject(s, 0)  # the take is not rejected by accident


def test_changing_root_mode_reapplies_cached_rounds(addon):
    rig = preview_rig(addon)
    add_round(addon, rig, joints=walk_joints(40, speed=1.0))
    s = settings()
    name = s.rounds[0].action
    hips = addon.rounds.rig_map_for([b.name for b in bpy.data.objects[rig].data.bones], "AUTO").bones["pelvis"]
    travelling = hips_travel(name, hips)
    count = len(bpy.data.actions)

    s.root_mode = "IN_PLACE"  # the property update re-applies; no backend involved

    assert len(bpy.data.actions) == count and s.rounds[0].action == name
    in_place = hips_travel(name, hips)
    assert travelling > 1.0 and in_place < 0.3 * travelling
    assert shown(rig) == name and bound_slot(rig) is not None


def test_armature_without_hips_gets_a_clear_message(addon):
    arm = bpy.data.armatures.new("NoHips")
    obj = bpy.data.objects.new("NoHips", arm)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for name in ("Spine", "Neck", "Head", "LeftArm"):
        bone = arm.edit_bones.new(name)
        bone.head, bone.tail = (0, 0, 1), (0, 0, 1.2)
    bpy.ops.object.mode_set(mode="OBJECT")

    add_round(addon, "NoHips")

    entry = settings().rounds[0]
    assert "hips" in entry.error.lower() or "pelvis" in entry.error.lower()
    assert entry.action == "" and shown("NoHips") == ""


def test_export_writes_only_the_accepted_take(addon, tmp_path):
    rig = preview_rig(addon)
    obj = bpy.data.objects[rig]
    idle = bpy.data.actions.new("Idle")
    idle.use_fake_user = True
    addon.compat.assign_action(obj, idle)
    add_round(addon, rig, index=0, joints=walk_joints(30))
    add_round(addon, rig, index=1, joints=walk_joints(50))
    add_round(addon, rig, job="job-b", index=0, joints=walk_joints(70))  # pending, must not leak
    s = settings()
    take = addon.rounds.accept(s, 1)
    addon.rounds.preview(s, len(s.rounds) - 1)  # the animator looks at the other job's round meanwhile

    fbx = addon.export.export_take(bpy.context.scene, rig, take, str(tmp_path / "take"), "FBX", "UNITY")
    glb = addon.export.export_take(bpy.context.scene, rig, take, str(tmp_path / "take"), "GLB")
    bpy.context.view_layer.objects.active = obj  # the operator exports the active armature's take
    assert bpy.ops.irg_motion.export_take(filepath=str(tmp_path / "take.bvh"), format="BVH") == {"FINISHED"}
    bvh = str(tmp_path / "take.bvh")
    assert shown(rig) == s.rounds[-1].action  # what was on screen before the export is back

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=fbx)
    assert len(bpy.data.actions) == 1
    start, end = bpy.data.actions[0].frame_range
    assert int(round(end - start)) + 1 == 50
    assert not any(b.name.endswith("_end") for a in bpy.data.armatures for b in a.bones)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=glb)
    assert len(bpy.data.actions) == 1

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=bvh)
    start, end = bpy.data.actions[0].frame_range
    assert int(round(end - start)) + 1 == 50
