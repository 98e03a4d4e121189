"""Thin bpy layer of the retargeter: read an armature into a RigDescription, write a BoneAnimation as an
Action, build the reference rigs, load targets and export results. The only module in retarget/ that
imports bpy; everything it computes comes from the numpy modules."""
from __future__ import annotations

from pathlib import Path

import bpy
import mathutils
import numpy as np

from retarget import blender_compat
from retarget.rig import RigDescription, reference_layout
from retarget.transfer import BoneAnimation

TARGET_SUFFIXES = (".fbx", ".blend", ".bvh")
OUTPUT_SUFFIXES = (".fbx", ".glb", ".bvh", ".blend")
PRESET_RIGS = ("smpl", "mixamo", "rigify", "ue5", "vroid", "cmu")


def rig_from_armature(obj) -> RigDescription:
    if obj is None or obj.type != "ARMATURE":
        raise ValueError(f"{getattr(obj, 'name', obj)!r} is not an armature object")
    bones = obj.data.bones
    if len(bones) == 0:
        raise ValueError(f"armature {obj.name!r} has no bones")
    flat = np.empty(len(bones) * 16, dtype=np.float32)
    bones.foreach_get("matrix_local", flat)
    constraints, copies = _read_constraints(obj)
    return RigDescription(
        bone_names=[b.name for b in bones],
        parents=[bones.find(b.parent.name) if b.parent else -1 for b in bones],
        rest_matrices=flat.reshape(-1, 4, 4).transpose(0, 2, 1),  # bpy flattens matrices column by column
        world_matrix=np.array(obj.matrix_world, dtype=np.float64),
        constraints=constraints,
        copies=copies,
    )


def _read_constraints(obj) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Bones with constraints that take effect (name -> constraint names), and bones whose last effective constraint
    copies another bone's whole world transform (name -> that bone). Influences are read after drivers ran."""
    try:
        evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    except (RuntimeError, ReferenceError):  # not in the current view layer: stored values are all there is
        evaluated = obj
    active, copies = {}, {}
    for pose_bone in evaluated.pose.bones:
        live = [c for c in pose_bone.constraints if c.enabled and c.influence > 0.0]
        if not live:
            continue
        active[pose_bone.name] = [c.name for c in live]
        last = live[-1]
        if (last.type == "COPY_TRANSFORMS" and last.influence >= 1.0 and getattr(last.target, "name", None) == obj.name
                and last.subtarget and last.mix_mode == "REPLACE" and last.target_space == last.owner_space == "WORLD"):
            copies[pose_bone.name] = last.subtarget
    return active, copies


# Rigify's switches (custom properties on its pose bones) and the value that makes the controls a plain FK chain:
# limbs follow their FK controls, neck and head inherit the chest's rotation instead of the torso's.
_RIGIFY_FK_SWITCHES = {"IK_FK": 1.0, "neck_follow": 1.0, "head_follow": 1.0}


def switch_rigify_to_fk(obj) -> list[str]:
    """Set a generated Rigify rig's IK/FK and follow switches so keys on its FK controls drive the body as a plain
    FK hierarchy (what the rigify_fk map expects). Returns the switches changed, as 'bone["property"]'."""
    changed = []
    for pose_bone in obj.pose.bones:
        for prop, value in _RIGIFY_FK_SWITCHES.items():
            if prop in pose_bone.keys() and pose_bone[prop] != value:
                pose_bone[prop] = value
                changed.append(f'{pose_bone.name}["{prop}"]')
    return changed


def _interpolation(name: str) -> int:
    return bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items[name].value


def write_action(obj, anim: BoneAnimation, action_name: str, frame_start: int = 1):
    """A new Action on `obj` keyed at integer frames from frame_start. Bones that never leave their rest get no
    keys and are put back to rest, so only moving channels are written."""
    action = bpy.data.actions.new(action_name)
    blender_compat.assign_action(obj, action)
    frames = frame_start + np.arange(anim.frames, dtype=np.float32)
    co = np.empty(2 * anim.frames, dtype=np.float32)
    co[0::2] = frames
    linear = np.full(anim.frames, _interpolation("LINEAR"), dtype=np.int32)
    identity = np.array([1.0, 0.0, 0.0, 0.0])
    for b, name in enumerate(anim.bone_names):
        pose_bone = obj.pose.bones.get(name)
        if pose_bone is None:
            continue
        turns = np.abs(anim.rotations[:, b] - identity).max() > 1e-7
        moves = np.abs(anim.locations[:, b]).max() > 1e-9
        if turns:
            pose_bone.rotation_mode = "QUATERNION"
        else:  # back to rest in whatever rotation mode the animator uses for this bone
            pose_bone.rotation_quaternion = identity
            pose_bone.rotation_euler = (0.0, 0.0, 0.0)
            pose_bone.rotation_axis_angle = (0.0, 0.0, 1.0, 0.0)
        if not moves:
            pose_bone.location = (0.0, 0.0, 0.0)
        pose_bone.scale = (1.0, 1.0, 1.0)
        channels = [("rotation_quaternion", anim.rotations[:, b])] if turns else []
        if moves:
            channels.append(("location", anim.locations[:, b]))
        for prop, values in channels:
            path = pose_bone.path_from_id(prop)
            for i in range(values.shape[1]):
                fcurve = blender_compat.new_fcurve(action, obj, path, i, name)
                fcurve.keyframe_points.add(anim.frames)
                co[1::2] = values[:, i]
                fcurve.keyframe_points.foreach_set("co", co)
                fcurve.keyframe_points.foreach_set("interpolation", linear)
                fcurve.update()
    return action


def _link_new_object(obj) -> None:
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj


def build_preset_rig(name: str, a_pose: bool = False):
    """An armature of one preset family in the current scene (Rigify: Blender's own human metarig)."""
    if name not in PRESET_RIGS:
        raise ValueError(f"unknown preset rig {name!r}; choose one of {', '.join(PRESET_RIGS)}")
    if name == "rigify":
        if a_pose:
            raise ValueError("the Rigify metarig comes in its own rest pose; a_pose applies to the other presets")
        import addon_utils

        addon_utils.enable("rigify", default_set=True)
        bpy.ops.object.armature_human_metarig_add()
        return bpy.context.object
    bones, world = reference_layout(name, a_pose)
    data = bpy.data.armatures.new(f"{name}_rig")
    obj = bpy.data.objects.new(f"{name}_rig", data)
    _link_new_object(obj)
    obj.matrix_world = mathutils.Matrix(world.tolist())
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        for spec in bones:
            edit = data.edit_bones.new(spec.name)
            edit.head, edit.tail, edit.roll = spec.head.tolist(), spec.tail.tolist(), float(spec.roll)
            if spec.parent:
                edit.parent = data.edit_bones[spec.parent]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def _armatures() -> list:
    return [o for o in bpy.data.objects if o.type == "ARMATURE"]


def load_target(target: str, armature: str = ""):
    """The armature to animate: a preset name builds its reference rig, a .fbx/.bvh is imported into an empty
    scene, a .blend is opened. With several armatures, `armature` names one, else the one with most bones."""
    path = Path(target)
    if target in PRESET_RIGS:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        return build_preset_rig(target)
    if path.suffix.lower() not in TARGET_SUFFIXES:
        raise ValueError(f"--rig must be a preset ({', '.join(PRESET_RIGS)}) or a {', '.join(TARGET_SUFFIXES)} file, got {target!r}")
    if not path.is_file():
        raise ValueError(f"{target}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".blend":
        bpy.ops.wm.open_mainfile(filepath=str(path))
    else:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        if suffix == ".fbx":
            bpy.ops.import_scene.fbx(filepath=str(path))
        else:
            bpy.ops.import_anim.bvh(filepath=str(path))
    found = _armatures()
    if armature:
        match = [o for o in found if o.name == armature]
        if not match:
            raise ValueError(f"{target}: no armature named {armature!r} (found: {', '.join(o.name for o in found) or 'none'})")
        return match[0]
    if not found:
        raise ValueError(f"{target}: contains no armature")
    return max(found, key=lambda o: len(o.data.bones))


def set_scene_timing(scene, frame_start: int, frames: int, fps: float) -> None:
    scene.frame_start, scene.frame_end = frame_start, frame_start + frames - 1
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps


def export(obj, out: str) -> Path:
    """Write the armature (and its meshes) with only its active action, by the suffix of `out`."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out must end in one of {', '.join(OUTPUT_SUFFIXES)}, got {out!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = bpy.context.scene
    for other in bpy.context.view_layer.objects:
        other.select_set(other == obj or other.parent == obj)
    bpy.context.view_layer.objects.active = obj
    if suffix == ".fbx":
        bpy.ops.export_scene.fbx(
            filepath=str(path), use_selection=True, object_types={"ARMATURE", "MESH"}, add_leaf_bones=False,
            bake_anim=True, bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
            bake_anim_force_startend_keying=True, bake_anim_simplify_factor=0.0, bake_anim_step=1.0,
            apply_unit_scale=True,
        )
    elif suffix == ".glb":
        bpy.ops.export_scene.gltf(
            filepath=str(path), export_format="GLB", use_selection=True, export_animation_mode="ACTIVE_ACTIONS",
        )
    elif suffix == ".bvh":
        bpy.ops.export_anim.bvh(filepath=str(path), frame_start=scene.frame_start, frame_end=scene.frame_end)
    else:
        bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    return path
