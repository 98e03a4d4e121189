"""The only place that knows how Blender's animation API differs between 4.2 and 5.x.

4.4 introduced slotted (layered) actions: an assigned action must also have a slot bound to the object,
and F-curves live in a channelbag per slot. 5.0 removed the legacy `Action.fcurves` proxy.
"""
from __future__ import annotations

import bpy

SLOTTED_ACTIONS = bpy.app.version >= (4, 4, 0)
GROUP_NAME_ON_ENSURE = bpy.app.version >= (5, 0, 0)


def assign_action(obj, action) -> None:
    """Make `action` the object's active action and bind a slot for it (4.4+: auto-binding fails for actions
    that were bound to another object before)."""
    anim_data = obj.animation_data or obj.animation_data_create()
    anim_data.action = action
    if SLOTTED_ACTIONS and anim_data.action_slot is None:
        slot = action.slots[0] if len(action.slots) else action.slots.new(id_type="OBJECT", name=obj.name)
        anim_data.action_slot = slot


def new_fcurve(action, obj, data_path: str, index: int, group: str):
    """An F-curve on `obj`'s slot of `action` (which must already be assigned with assign_action)."""
    if not SLOTTED_ACTIONS:
        return action.fcurves.new(data_path, index=index, action_group=group)
    if GROUP_NAME_ON_ENSURE:
        return action.fcurve_ensure_for_datablock(obj, data_path, index=index, group_name=group)
    return action.fcurve_ensure_for_datablock(obj, data_path, index=index)


def action_fcurves(action, obj=None) -> list:
    """All F-curves of an action (of obj's slot when given), whatever the Blender version."""
    if not SLOTTED_ACTIONS:
        return list(action.fcurves)
    result = []
    slot = obj.animation_data.action_slot if obj is not None and obj.animation_data else None
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                if slot is None or bag.slot == slot:
                    result.extend(bag.fcurves)
    return result
