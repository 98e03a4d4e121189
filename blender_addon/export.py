"""Export only the accepted take: FBX presets for Unity, Unreal and a Blender round trip, GLB, BVH.

Blender's exporters take every Action by default (FBX `bake_anim_use_all_actions`, glTF 'ACTIONS'),
add `_end` leaf bones and thin the curves; rejected rounds would leak into the deliverable. So the
export shows only the take (its action active, NLA muted, the scene range set to it) and puts
everything back afterwards.
"""
from __future__ import annotations

import contextlib

import bpy

from . import compat
from .rounds import RoundError, get_armature

FORMATS = {"FBX": ".fbx", "GLB": ".glb", "BVH": ".bvh"}

_FBX_COMMON = dict(
    use_selection=True, object_types={"ARMATURE", "MESH"}, add_leaf_bones=False, bake_anim=True,
    bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False, bake_anim_use_all_bones=True,
    bake_anim_force_startend_keying=True, bake_anim_simplify_factor=0.0, bake_anim_step=1.0,
)
FBX_PRESETS = {
    # Both engines want real-world scale baked into the file rather than a 100x object scale.
    "UNITY": dict(apply_unit_scale=True, apply_scale_options="FBX_SCALE_ALL", axis_forward="-Z", axis_up="Y"),
    "UNREAL": dict(apply_unit_scale=True, apply_scale_options="FBX_SCALE_ALL", axis_forward="-Z", axis_up="Y",
                   use_armature_deform_only=True),
    "BLENDER": dict(apply_unit_scale=True, apply_scale_options="FBX_SCALE_NONE"),
}


def export_take(scene, armature_name: str, action_name: str, filepath: str, fmt: str = "FBX",
                preset: str = "UNITY") -> str:
    """Write `action_name` on `armature_name` (and its meshes) to `filepath`; returns the path written."""
    obj = get_armature(armature_name)
    action = bpy.data.actions.get(action_name)
    if action is None:
        raise RoundError("Accept a round before exporting: there is no accepted take")
    filepath = bpy.path.ensure_ext(bpy.path.abspath(filepath), FORMATS[fmt])  # '//' is relative to the .blend
    with _only_take(scene, obj, action) as (start, end):
        if fmt == "FBX":
            bpy.ops.export_scene.fbx(filepath=filepath, check_existing=False, **_FBX_COMMON, **FBX_PRESETS[preset])
        elif fmt == "GLB":
            bpy.ops.export_scene.gltf(filepath=filepath, check_existing=False, export_format="GLB",
                                      use_selection=True, export_animation_mode="ACTIVE_ACTIONS",
                                      export_force_sampling=True, export_optimize_animation_size=False)
        else:
            bpy.ops.export_anim.bvh(filepath=filepath, check_existing=False, frame_start=start, frame_end=end,
                                    root_transform_only=False)
    return filepath


@contextlib.contextmanager
def _only_take(scene, obj, action):
    view_layer = bpy.context.view_layer
    selected = [o.name for o in view_layer.objects if o.select_get()]
    active = view_layer.objects.active.name if view_layer.objects.active else ""
    shown = compat.current_action(obj)
    use_nla = obj.animation_data.use_nla if obj.animation_data else True
    frame_range = scene.frame_start, scene.frame_end
    start, end = (int(round(f)) for f in action.frame_range)
    try:
        for o in view_layer.objects:
            o.select_set(o == obj or (o.type == "MESH" and o.parent == obj))
        view_layer.objects.active = obj
        compat.assign_action(obj, action)
        obj.animation_data.use_nla = False
        scene.frame_start, scene.frame_end = start, end
        yield start, end
    finally:
        scene.frame_start, scene.frame_end = frame_range
        obj.animation_data.use_nla = use_nla
        compat.assign_action(obj, bpy.data.actions.get(shown[0]), shown[1])
        for o in view_layer.objects:
            o.select_set(o.name in selected)
        view_layer.objects.active = bpy.data.objects.get(active)
