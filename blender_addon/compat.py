"""Showing, restoring and keeping actions on 4.2 (no slots) and 4.4+ (slotted actions).

Slot binding itself is `retarget.blender_compat`'s; this adds what the add-on needs on top: clearing,
restoring the exact slot an armature showed before a preview, and NLA strips.
"""
from __future__ import annotations


from .retarget import blender_compat

HAS_SLOTS = blender_compat.SLOTTED_ACTIONS


def current_action(obj) -> tuple[str, str]:
    """(action name, slot identifier) the object shows now; empty strings for none."""
    adt = obj.animation_data
    if adt is None or adt.action is None:
        return "", ""
    slot = adt.action_slot if HAS_SLOTS else None
    return adt.action.name, slot.identifier if slot is not None else ""


def assign_action(obj, action, slot_identifier: str = "") -> None:
    """Show `action` (None clears) on `obj` with a bound slot: the named one when it still exists."""
    if action is None:
        if obj.animation_data is not None:
            obj.animation_data.action = None
        return
    blender_compat.assign_action(obj, action)
    slot = action.slots.get(slot_identifier) if HAS_SLOTS and slot_identifier else None
    if slot is not None and obj.animation_data.action_slot != slot:
        obj.animation_data.action_slot = slot


def protect(action) -> None:
    """Keep an action only the armature used from being purged on save while a round is shown instead."""
    if action is not None and action.users == 1 and not action.use_fake_user:
        action.use_fake_user = True


def push_to_nla(obj, action) -> None:
    """Add the action as a strip on a track of its own (strips on one track may not overlap)."""
    adt = obj.animation_data or obj.animation_data_create()
    track = adt.nla_tracks.new()
    track.name = f"IRG {action.name}"
    strip = track.strips.new(action.name, int(action.frame_range[0]), action)
    if HAS_SLOTS and strip.action_slot is None and adt.action_slot is not None:
        strip.action_slot = adt.action_slot
