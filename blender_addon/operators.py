"""Operators: each one reads the panel state, calls one plain function and reports the outcome."""
from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from . import client, export, rounds, smpl_body


def _fail(op, settings, exc) -> set:
    settings.message = str(exc)
    op.report({"ERROR"}, str(exc))
    return {"CANCELLED"}


def _current_round(settings):
    if 0 <= settings.rounds_index < len(settings.rounds):
        return settings.rounds[settings.rounds_index]
    return None


class IRGMOTION_OT_test_connection(bpy.types.Operator):
    bl_idname = "irg_motion.test_connection"
    bl_label = "Test Connection"
    bl_description = "Ask the backend for its model and measure the round trip"

    def execute(self, context):
        try:
            client.test_connection(context.scene)
        except ValueError as exc:
            return _fail(self, context.scene.irg_motion, exc)
        return {"FINISHED"}


class IRGMOTION_OT_generate(bpy.types.Operator):
    bl_idname = "irg_motion.generate"
    bl_label = "Generate"
    bl_description = "Send the prompt; every round appears on the armature as it arrives"

    @classmethod
    def poll(cls, context):
        return bool(context.scene.irg_motion.prompt.strip())

    def execute(self, context):
        settings = context.scene.irg_motion
        try:
            armature = rounds.resolve_target(context.scene, context.active_object)
            client.generate(context.scene, armature)
        except (ValueError, rounds.RoundError) as exc:
            return _fail(self, settings, exc)
        return {"FINISHED"}


class IRGMOTION_OT_cancel(bpy.types.Operator):
    bl_idname = "irg_motion.cancel"
    bl_label = "Cancel"
    bl_description = "Stop the running job; rounds already received stay in the list"

    def execute(self, context):
        client.cancel(context.scene)
        return {"FINISHED"}


class IRGMOTION_OT_create_preview_rig(bpy.types.Operator):
    bl_idname = "irg_motion.create_preview_rig"
    bl_label = "Create SMPL preview rig"
    bl_description = "Add an SMPL armature to preview rounds on"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        context.scene.irg_motion.target = bpy.data.objects[rounds.create_preview_rig()]
        return {"FINISHED"}


class IRGMOTION_OT_add_smpl_body(bpy.types.Operator):
    bl_idname = "irg_motion.add_smpl_body"
    bl_label = "Add SMPL body"
    bl_description = "Add a skinned SMPL mesh from your model file, bound to the SMPL preview rig"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.irg_motion
        try:
            armature = rounds.resolve_target(context.scene, context.active_object)
            name = smpl_body.add_body(armature, settings.smpl_folder)
        except rounds.RoundError as exc:
            return _fail(self, settings, exc)
        settings.message = ""
        self.report({"INFO"}, f"Added '{name}'")
        return {"FINISHED"}


class _RoundOperator(bpy.types.Operator):
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        entry = _current_round(context.scene.irg_motion)
        return entry is not None and entry.status == rounds.PENDING


class IRGMOTION_OT_accept(_RoundOperator):
    bl_idname = "irg_motion.accept"
    bl_label = "Accept"
    bl_description = "Keep this round as the take and remove the job's other rounds"

    def execute(self, context):
        settings = context.scene.irg_motion
        job = _current_round(settings).job
        try:
            name = rounds.accept(settings, settings.rounds_index, settings.accept_as_nla)
        except rounds.RoundError as exc:
            return _fail(self, settings, exc)
        client.accept(context.scene, job)
        self.report({"INFO"}, f"Accepted '{name}'")
        return {"FINISHED"}


class IRGMOTION_OT_reject(_RoundOperator):
    bl_idname = "irg_motion.reject"
    bl_label = "Reject"
    bl_description = "Remove this round and show what was there before (step mode: the model refines)"

    def execute(self, context):
        settings = context.scene.irg_motion
        entry = _current_round(settings)
        job, index = entry.job, entry.index
        try:
            rounds.reject(settings, settings.rounds_index)
            if job == client.live_job():  # a paused step-mode job continues with the model's own instruction
                client.refine(context.scene, job, index, None)
        except rounds.RoundError as exc:
            return _fail(self, settings, exc)
        return {"FINISHED"}


class IRGMOTION_OT_refine(_RoundOperator):
    bl_idname = "irg_motion.refine"
    bl_label = "Refine with my instruction"
    bl_description = "Ask for another round of this job that follows your instruction"
    bl_options = {"REGISTER"}

    def execute(self, context):
        settings = context.scene.irg_motion
        entry = _current_round(settings)
        try:
            client.refine(context.scene, entry.job, entry.index, settings.refine_instruction.strip())
        except rounds.RoundError as exc:
            return _fail(self, settings, exc)
        return {"FINISHED"}


class IRGMOTION_OT_reapply(bpy.types.Operator):
    bl_idname = "irg_motion.reapply"
    bl_label = "Re-apply rounds"
    bl_description = "Retarget the pending rounds again with the current rig map and root settings"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.irg_motion
        problems = rounds.reapply_pending(settings)
        settings.message = problems[0] if problems else ""
        if problems:  # the other rounds were re-applied: still one undo step
            self.report({"WARNING"}, problems[0])
        return {"FINISHED"}


class IRGMOTION_OT_export_take(bpy.types.Operator):
    bl_idname = "irg_motion.export_take"
    bl_label = "Export Accepted Take"
    bl_description = "Write only the accepted take of the target armature"

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.fbx;*.glb;*.bvh", options={"HIDDEN"})
    format: EnumProperty(name="Format", items=[
        ("FBX", "FBX", "Game engines and DCC tools"), ("GLB", "GLB", "glTF binary"), ("BVH", "BVH", "Skeleton only"),
    ])
    preset: EnumProperty(name="FBX preset", items=[
        ("UNITY", "Unity", ""), ("UNREAL", "Unreal", ""), ("BLENDER", "Blender round trip", ""),
    ])

    def _take(self, context):
        scene = context.scene
        settings = scene.irg_motion
        armature = rounds.resolve_target(scene, context.active_object)
        return armature, rounds.accepted_action(settings, armature)

    def invoke(self, context, event):
        try:
            _, action = self._take(context)
        except rounds.RoundError as exc:
            return _fail(self, context.scene.irg_motion, exc)
        if not self.filepath:
            self.filepath = bpy.path.clean_name(action or "take") + export.FORMATS[self.format]
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def check(self, context):
        # Keep the extension in step with the chosen format while the file browser is open.
        stem, dot, ext = self.filepath.rpartition(".")
        fixed = (stem if dot and "." + ext.lower() in export.FORMATS.values() else self.filepath) + \
            export.FORMATS[self.format]
        changed, self.filepath = fixed != self.filepath, fixed
        return changed

    def execute(self, context):
        settings = context.scene.irg_motion
        if not self.filepath:
            return _fail(self, settings, "Choose a file to export to")
        try:
            armature, action = self._take(context)
            path = export.export_take(context.scene, armature, action, self.filepath, self.format, self.preset)
        except rounds.RoundError as exc:
            return _fail(self, settings, exc)
        self.report({"INFO"}, f"Exported {path}")
        return {"FINISHED"}


classes = (
    IRGMOTION_OT_test_connection, IRGMOTION_OT_generate, IRGMOTION_OT_cancel, IRGMOTION_OT_create_preview_rig,
    IRGMOTION_OT_add_smpl_body, IRGMOTION_OT_accept, IRGMOTION_OT_reject, IRGMOTION_OT_refine, IRGMOTION_OT_reapply,
    IRGMOTION_OT_export_take,
)
