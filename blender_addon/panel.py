"""The "IRG Motion" sidebar tab of the 3D Viewport. Drawing only reads state; nothing here talks to the backend."""
from __future__ import annotations

import textwrap

import bpy

from . import rounds


def wrapped(layout, text: str, width_px: int, icon: str = "NONE") -> None:
    """Labels are one line in Blender; wrap long model text to the sidebar's width."""
    chars = max(20, int(width_px / 7))
    for i, line in enumerate(textwrap.wrap(text, chars) or [""]):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1" if icon != "NONE" else "NONE")


class _Sidebar:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "IRG Motion"


class IRGMOTION_UL_rounds(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        icon = "CHECKMARK" if item.status == rounds.ACCEPTED else "ERROR" if item.error else "ACTION"
        final = " (final)" if item.is_final else ""
        layout.label(text=f"Round {item.index + 1}{final}  {item.prompt}", icon=icon)


class IRGMOTION_PT_main(_Sidebar, bpy.types.Panel):
    bl_label = "IRG Motion"

    def draw(self, context):
        settings = context.scene.irg_motion
        layout = self.layout
        layout.prop(settings, "address")
        row = layout.row()
        row.label(text=settings.status, icon="LINKED" if settings.connected else "UNLINKED")
        row.operator("irg_motion.test_connection", text="", icon="FILE_REFRESH")
        if settings.connected:
            layout.label(text=f"{settings.model} on {settings.device}, {settings.latency_ms:.1f} ms")
        if settings.message:
            wrapped(layout.box(), settings.message, context.region.width, icon="ERROR")


class IRGMOTION_PT_generate(_Sidebar, bpy.types.Panel):
    bl_label = "Generate"
    bl_parent_id = "IRGMOTION_PT_main"

    def draw(self, context):
        settings = context.scene.irg_motion
        layout = self.layout
        layout.prop(settings, "prompt", text="")
        col = layout.column(align=True)
        col.prop(settings, "seconds")
        col.prop(settings, "max_rounds")
        col.prop(settings, "seed")
        layout.row().prop(settings, "mode", expand=True)
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("irg_motion.generate", icon="PLAY")
        row.operator("irg_motion.cancel", icon="CANCEL")
        if settings.progress:
            layout.label(text=settings.progress, icon="TIME")


class IRGMOTION_PT_target(_Sidebar, bpy.types.Panel):
    bl_label = "Target"
    bl_parent_id = "IRGMOTION_PT_main"

    def draw(self, context):
        settings = context.scene.irg_motion
        layout = self.layout
        layout.prop(settings, "target")
        try:
            armature = rounds.resolve_target(context.scene, context.active_object)
        except rounds.RoundError as exc:
            layout.label(text=str(exc), icon="INFO")
            layout.operator("irg_motion.create_preview_rig", icon="ARMATURE_DATA")
            return
        if settings.target is None:
            layout.label(text=f"Active armature: {armature}", icon="OUTLINER_OB_ARMATURE")
        layout.prop(settings, "rig_map")
        name, missing = rounds.describe_rig_map(armature, settings.rig_map)
        wrapped(layout, f"Map: {name}", context.region.width)
        if missing:
            wrapped(layout, "Missing: " + ", ".join(missing), context.region.width, icon="ERROR")
        layout.row().prop(settings, "root_mode", expand=True)
        layout.prop(settings, "foot_cleanup")
        if "left_wrist" in bpy.data.objects[armature].data.bones:  # the SMPL preview rig
            layout.prop(settings, "smpl_folder")
            layout.operator("irg_motion.add_smpl_body", icon="OUTLINER_OB_MESH")


class IRGMOTION_PT_rounds(_Sidebar, bpy.types.Panel):
    bl_label = "Rounds"
    bl_parent_id = "IRGMOTION_PT_main"

    def draw(self, context):
        settings = context.scene.irg_motion
        layout = self.layout
        layout.template_list("IRGMOTION_UL_rounds", "", settings, "rounds", settings, "rounds_index", rows=3)
        if not 0 <= settings.rounds_index < len(settings.rounds):
            return
        entry = settings.rounds[settings.rounds_index]
        box = layout.box()
        if entry.error:
            wrapped(box, entry.error, context.region.width, icon="ERROR")
        if entry.assessment:
            wrapped(box, "Assessment: " + entry.assessment, context.region.width)
        if entry.instruction:
            wrapped(box, "Model's instruction: " + entry.instruction, context.region.width)
        scene_fps = context.scene.render.fps / context.scene.render.fps_base
        if abs(scene_fps - entry.fps) > 1e-3:
            wrapped(box, f"Keys are one per frame at the model's {entry.fps:g} fps; the scene plays "
                         f"{scene_fps:g} fps", context.region.width, icon="INFO")
        if entry.status == rounds.ACCEPTED:
            box.label(text=f"Accepted as '{entry.action}'", icon="CHECKMARK")
            return
        row = layout.row(align=True)
        row.operator("irg_motion.accept", icon="CHECKMARK")
        row.operator("irg_motion.reject", icon="X")
        layout.prop(settings, "accept_as_nla")
        layout.prop(settings, "refine_instruction", text="")
        layout.operator("irg_motion.refine", icon="GREASEPENCIL")
        layout.operator("irg_motion.reapply", icon="FILE_REFRESH")


class IRGMOTION_PT_export(_Sidebar, bpy.types.Panel):
    bl_label = "Export"
    bl_parent_id = "IRGMOTION_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        col = self.layout.column(align=True)
        for fmt, preset, label in (("FBX", "UNITY", "FBX for Unity"), ("FBX", "UNREAL", "FBX for Unreal"),
                                   ("FBX", "BLENDER", "FBX round trip"), ("GLB", "UNITY", "GLB"),
                                   ("BVH", "UNITY", "BVH")):
            op = col.operator("irg_motion.export_take", text=label, icon="EXPORT")
            op.format, op.preset = fmt, preset


classes = (IRGMOTION_UL_rounds, IRGMOTION_PT_main, IRGMOTION_PT_generate, IRGMOTION_PT_target,
           IRGMOTION_PT_rounds, IRGMOTION_PT_export)
