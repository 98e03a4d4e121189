"""Panel state: `scene.irg_motion` holds the connection status, the job and its rounds."""
from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from . import protocol, rounds
from .retarget.rigmaps import PRESETS


def _rig_map_items(self, context):
    # Identifiers and names come from module-level objects, which keeps the strings alive for Blender.
    return [("AUTO", "Auto-detect", "Detect the rig family from the bone names")] + [
        (key, rig_map.name, "") for key, rig_map in PRESETS.items()
    ]


def _reapply(self, context):
    problems = rounds.reapply_pending(self)
    self.message = problems[0] if problems else ""


def _preview(self, context):
    if 0 <= self.rounds_index < len(self.rounds):
        try:
            rounds.preview(self, self.rounds_index)
        except rounds.RoundError as exc:
            self.message = str(exc)


class IRGMOTION_PG_round(bpy.types.PropertyGroup):
    job: StringProperty()
    index: IntProperty(description="Round number as the backend counts it")
    armature: StringProperty()
    action: StringProperty()
    previous_action: StringProperty(description="What the armature showed before this round")
    previous_slot: StringProperty()
    prompt: StringProperty()
    fps: FloatProperty(default=20.0)
    assessment: StringProperty()
    instruction: StringProperty()
    is_final: BoolProperty()
    error: StringProperty()
    status: EnumProperty(items=[(rounds.PENDING, "Pending", ""), (rounds.ACCEPTED, "Accepted", "")])


class IRGMOTION_PG_settings(bpy.types.PropertyGroup):
    # connection
    address: StringProperty(name="Backend", default=protocol.DEFAULT_ENDPOINT,
                            description="ZeroMQ address of 'irg-motion serve'")
    status: StringProperty(default="Not connected")
    connected: BoolProperty()
    model: StringProperty()
    device: StringProperty()
    latency_ms: FloatProperty()
    message: StringProperty(description="The last problem, in words")
    # request
    prompt: StringProperty(name="Prompt", default="a person walks forward and waves")
    seconds: FloatProperty(name="Seconds", default=4.0, min=0.5, max=30.0, step=50)
    max_rounds: IntProperty(name="Max rounds", default=3, min=1, max=8)
    seed: IntProperty(name="Seed", default=0, min=0, max=2**31 - 1,
                      description="0: the model's most likely motion; any other value samples with that seed")
    mode: EnumProperty(name="Mode", items=[
        ("AUTO", "Auto", "The model refines until it is satisfied or max rounds is reached"),
        ("STEP", "Step", "Pause after every round for accept, reject or your own instruction"),
    ])
    # job
    job_armature: StringProperty()
    job_prompt: StringProperty()
    progress: StringProperty()
    # target and retargeting
    target: PointerProperty(name="Armature", type=bpy.types.Object,
                            poll=lambda self, obj: obj.type == "ARMATURE",
                            description="Armature to animate (empty: the active armature)")
    rig_map: EnumProperty(name="Rig map", items=_rig_map_items, update=_reapply)
    root_mode: EnumProperty(name="Root", items=[
        ("TRAVEL", "Travel", "The hips carry the motion through the scene"),
        ("IN_PLACE", "In place", "Remove horizontal travel, keep bob and sway"),
        ("ROOT_BONE", "Root bone", "Travel and heading on the root bone, for engine root motion"),
    ], update=_reapply)
    foot_cleanup: BoolProperty(name="Foot clean-up", default=True, update=_reapply,
                               description="Pin feet while they touch the ground and snap to the floor")
    smpl_folder: StringProperty(name="SMPL folder", subtype="DIR_PATH",
                                description="Folder with your SMPL model file (SMPL_NEUTRAL.pkl or .npz), for Add SMPL body")
    accept_as_nla: BoolProperty(name="Accept as NLA strip", default=False)
    refine_instruction: StringProperty(name="Instruction", description="Your own words for the next round")
    # rounds
    rounds: CollectionProperty(type=IRGMOTION_PG_round)
    rounds_index: IntProperty(update=_preview)


classes = (IRGMOTION_PG_round, IRGMOTION_PG_settings)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.irg_motion = PointerProperty(type=IRGMOTION_PG_settings)


def unregister() -> None:
    del bpy.types.Scene.irg_motion
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
