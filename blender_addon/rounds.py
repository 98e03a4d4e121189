"""Rounds of a job: one Action per round on the target armature, previewed, accepted or rejected.

Every round keeps its raw joints on its list entry (an ID property, so they survive save, reload and
undo); a different rig map, root mode or foot clean-up re-applies them without asking the backend.
All lookups go through names: entries store the armature and action names, never bpy references.
"""
from __future__ import annotations

import numpy as np
import bpy

from . import compat
from .retarget.blender_compat import action_fcurves, new_fcurve
from .retarget.blender_io import build_preset_rig, rig_from_armature, write_action
from .retarget.rigmaps import PRESETS, RigMap, detect_rig_map, preset_rig_map
from .retarget.skeleton import NUM_JOINTS
from .retarget.transfer import RetargetOptions, retarget

PENDING, ACCEPTED = "PENDING", "ACCEPTED"
_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


class RoundError(Exception):
    """A problem the animator can fix; its text goes straight into the panel."""


def get_armature(name: str) -> bpy.types.Object:
    obj = bpy.data.objects.get(name) if name else None
    if obj is None:
        raise RoundError(f"Target armature '{name}' no longer exists; pick one in the panel")
    if obj.type != "ARMATURE":
        raise RoundError(f"'{name}' is not an armature")
    return obj


def resolve_target(scene, active_object) -> str:
    """The armature name a new job animates: the panel's pick, else the active object."""
    settings = scene.irg_motion
    if settings.target is not None:
        return settings.target.name
    if active_object is not None and active_object.type == "ARMATURE":
        return active_object.name
    raise RoundError("Select an armature or use 'Create SMPL preview rig'")


def rig_map_for(bone_names: list[str], preset: str) -> RigMap:
    """The preset resolved against the rig's names, or the detected one; raises when the hips are missing."""
    try:
        rig_map = detect_rig_map(bone_names) if preset == "AUTO" else preset_rig_map(preset, bone_names)
    except ValueError as exc:
        raise RoundError(f"Cannot map this armature: {exc}") from None
    if "pelvis" not in rig_map.bones:
        raise RoundError(
            f"No hips bone found for rig map '{rig_map.name}' (expected a bone like "
            f"'{PRESETS[preset].bones['pelvis'] if preset in PRESETS else 'Hips'}'); "
            "pick the matching rig map preset or rename the hips bone"
        )
    return rig_map


def describe_rig_map(armature_name: str, preset: str) -> tuple[str, list[str]]:
    """(map name, missing SMPL joints) for the panel; a readable reason instead of raising."""
    try:
        obj = get_armature(armature_name)
        rig_map = rig_map_for([b.name for b in obj.data.bones], preset)
    except RoundError as exc:
        return str(exc), []
    return rig_map.name, list(rig_map.missing)


def create_preview_rig() -> str:
    return build_preset_rig("smpl").name


def action_name(armature_name: str, job: str, index: int) -> str:
    return f"{armature_name}|{job[:8]}|r{index + 1}"


def round_joints(entry) -> np.ndarray:
    return np.asarray(entry["joints"], dtype=np.float32).reshape(-1, NUM_JOINTS, 3)


def apply_entry(settings, entry) -> str:
    """Retarget the entry's cached joints onto its armature as the entry's Action; returns its name.

    The Action is rebuilt under the same name (no .001 pile-up) and becomes the armature's active one.
    """
    obj = get_armature(entry.armature)
    joints = round_joints(entry)
    rig = rig_from_armature(obj)
    rig_map = rig_map_for(rig.bone_names, settings.rig_map)
    options = RetargetOptions(
        root_mode=settings.root_mode.lower(), foot_lock=settings.foot_cleanup, ground_snap=settings.foot_cleanup
    )
    try:
        anim = retarget(joints, rig, rig_map, options, fps=entry.fps)
    except (ValueError, KeyError) as exc:  # the retargeter names the missing or unknown bones
        raise RoundError(f"Cannot retarget onto '{obj.name}': {exc}") from None
    name = entry.action or action_name(obj.name, entry.job, entry.index)
    old = bpy.data.actions.get(name)
    if old is not None:
        bpy.data.actions.remove(old)
    action = write_action(obj, anim, name)
    _key_resting_bones(obj, action, sorted(set(rig_map.bones.values())), anim.frames)
    for key, value in (("irg_job", entry.job), ("irg_round", entry.index), ("irg_prompt", entry.prompt),
                       ("irg_status", entry.status.lower())):
        action[key] = value
    entry.action = action.name  # write_action made it the armature's action, slot bound
    return action.name


def _key_resting_bones(obj, action, bone_names: list[str], frames: int, frame_start: int = 1) -> None:
    """Key the mapped bones the round leaves at rest (SMPL-22 says nothing about wrist twist, for one), so every
    mapped bone has a key on every frame: a take blended or layered in an engine never inherits another clip's pose."""
    keyed = {c.data_path for c in action_fcurves(action, obj)}
    co = np.empty(2 * frames, dtype=np.float32)
    co[0::2] = frame_start + np.arange(frames, dtype=np.float32)
    for name in bone_names:
        pose_bone = obj.pose.bones.get(name)
        if pose_bone is None or pose_bone.path_from_id("rotation_quaternion") in keyed:
            continue
        pose_bone.rotation_mode = "QUATERNION"
        path = pose_bone.path_from_id("rotation_quaternion")
        for i, value in enumerate((1.0, 0.0, 0.0, 0.0)):
            fcurve = new_fcurve(action, obj, path, i, name)
            fcurve.keyframe_points.add(frames)
            co[1::2] = value
            fcurve.keyframe_points.foreach_set("co", co)
            fcurve.keyframe_points.foreach_set("interpolation", [_LINEAR] * frames)
            fcurve.update()


def add_round(settings, *, job: str, index: int, armature: str, prompt: str, joints: np.ndarray, fps: float,
              assessment: str = "", instruction: str = "", is_final: bool = False, error: str = "") -> int:
    """List a round of `job` and preview it on `armature`; returns the entry's index in the list.

    A round the backend flagged as malformed, or one that cannot be retargeted, is still listed with
    its reason, so the animator sees why nothing moved.
    """
    entry = settings.rounds.add()
    entry.job, entry.index, entry.armature, entry.prompt = job, index, armature, prompt
    entry.fps, entry.assessment, entry.instruction, entry.is_final = fps, assessment, instruction, is_final
    entry.error = error
    entry["joints"] = np.ascontiguousarray(joints, dtype=np.float32).ravel()
    position = len(settings.rounds) - 1
    if not error and len(joints):
        try:
            obj = get_armature(armature)
            entry.previous_action, entry.previous_slot = compat.current_action(obj)
            previous = bpy.data.actions.get(entry.previous_action)
            if previous is not None and "irg_job" not in previous:  # the animator's own work
                compat.protect(previous)
            apply_entry(settings, entry)
        except RoundError as exc:
            entry.error = str(exc)
    settings.rounds_index = position
    return position


def reapply_pending(settings) -> list[str]:
    """Re-retarget every pending round (after a map, root mode or clean-up change); returns problems."""
    problems = []
    shown = {}
    for entry in settings.rounds:
        if entry.status != PENDING or not len(entry.get("joints", ())):
            continue
        try:
            obj = get_armature(entry.armature)
            shown.setdefault(obj.name, compat.current_action(obj))
            apply_entry(settings, entry)
            entry.error = ""
        except RoundError as exc:
            entry.error = str(exc)
            problems.append(str(exc))
    for armature, (name, slot) in shown.items():  # keep whichever round was on screen
        compat.assign_action(bpy.data.objects[armature], bpy.data.actions.get(name), slot)
    return problems


def preview(settings, position: int) -> None:
    entry = settings.rounds[position]
    action = bpy.data.actions.get(entry.action)
    if action is not None:
        compat.assign_action(get_armature(entry.armature), action)


def accept(settings, position: int, as_nla_strip: bool = False) -> str:
    """Keep the round: marked accepted, fake user, optionally an NLA strip; the job's other rounds go."""
    entry = settings.rounds[position]
    action = bpy.data.actions.get(entry.action)
    if action is None:
        raise RoundError(f"Round {entry.index + 1} has no action to accept" + (f": {entry.error}" if entry.error else ""))
    obj = get_armature(entry.armature)
    job, kept = entry.job, entry.action
    action["irg_status"] = "accepted"
    action.use_fake_user = True
    entry.status = ACCEPTED
    compat.assign_action(obj, action)
    if as_nla_strip:
        compat.push_to_nla(obj, action)
    for i in reversed(range(len(settings.rounds))):
        other = settings.rounds[i]
        if other.job == job and other.action != kept:
            _remove_entry(settings, i)
    settings.rounds_index = _position_of(settings, kept)
    return kept


def reject(settings, position: int) -> str:
    """Remove the round and its Action; the armature gets back what it showed before (name returned)."""
    entry = settings.rounds[position]
    if entry.status == ACCEPTED:
        raise RoundError(f"Round {entry.index + 1} is the accepted take; delete its action to drop it")
    job, armature = entry.job, entry.armature
    # What was on screen before this round, else the job's newest other round, else the pre-job action.
    job_entries = [e for e in settings.rounds if e.job == job]
    fallbacks = [(entry.previous_action, entry.previous_slot)]
    fallbacks += [(e.action, "") for e in reversed(job_entries) if e.action != entry.action]
    fallbacks += [(e.previous_action, e.previous_slot) for e in job_entries]
    obj = bpy.data.objects.get(armature)
    was_shown = obj is not None and compat.current_action(obj)[0] == entry.action
    _remove_entry(settings, position)
    restored = ""
    if was_shown:
        restored, slot = next(((n, s) for n, s in fallbacks if n and n in bpy.data.actions), ("", ""))
        compat.assign_action(obj, bpy.data.actions.get(restored), slot)
    # The selection follows what is on screen (selecting a round previews it); -1 for the animator's own action.
    settings.rounds_index = _position_of(settings, compat.current_action(obj)[0]) if obj is not None else -1
    return restored


def accepted_action(settings, armature_name: str) -> str:
    """The latest accepted take on `armature_name` ('' when none)."""
    names = [e.action for e in settings.rounds
             if e.status == ACCEPTED and e.armature == armature_name and e.action in bpy.data.actions]
    return names[-1] if names else ""


def _position_of(settings, action: str) -> int:
    return next((i for i, e in enumerate(settings.rounds) if e.action == action), -1)


def _remove_entry(settings, position: int) -> None:
    action = bpy.data.actions.get(settings.rounds[position].action)
    if action is not None and action.get("irg_status") != "accepted":
        bpy.data.actions.remove(action)
    settings.rounds.remove(position)
