"""IRG Motion: text-to-motion rounds from a local IRG-MotionLLM backend, retargeted onto your armature.

`build_addon.py` vendors `retarget/` and `backend/protocol.py` into this package and bundles the
pyzmq and msgpack wheels; the modules here are the Blender side only (see docs/blender_addon.md).
"""
from __future__ import annotations

import atexit

import bpy

from . import client, operators, panel, properties


@bpy.app.handlers.persistent
def _close_on_load(*_args):
    client.close_for_load()  # the scene the connection reported into is about to go away


@bpy.app.handlers.persistent
def _report_after_load(*_args):
    client.after_load()


def register() -> None:
    properties.register()
    for cls in operators.classes + panel.classes:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_pre.append(_close_on_load)
    bpy.app.handlers.load_post.append(_report_after_load)
    atexit.register(client.close)  # quitting Blender must not wait on a socket


def unregister() -> None:
    atexit.unregister(client.close)
    if _close_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_close_on_load)
    if _report_after_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_report_after_load)
    client.close()
    for cls in reversed(operators.classes + panel.classes):
        bpy.utils.unregister_class(cls)
    properties.unregister()
