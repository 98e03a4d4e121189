"""Shared fixtures for the add-on tests (no tests here): the staged extension registered in the bpy
wheel the way Blender registers an extension, and SMPL-22 motions made by forward kinematics."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def walk_joints(frames: int = 40, fps: float = 20.0, speed: float = 1.0) -> np.ndarray:
    """(frames, 22, 3) joints of a swinging-legs walk travelling along +Z, from forward kinematics."""
    from retarget.rotations import axis_angle_to_matrix
    from retarget.skeleton import REST_JOINTS, forward_kinematics, joint_index

    t = np.arange(frames) / fps
    axis_angle = np.zeros((frames, 22, 3))
    swing = 0.5 * np.sin(2 * np.pi * t)
    axis_angle[:, joint_index("left_hip"), 0] = swing
    axis_angle[:, joint_index("right_hip"), 0] = -swing
    axis_angle[:, joint_index("left_knee"), 0] = 0.6 * np.maximum(0, np.sin(2 * np.pi * t + 1))
    axis_angle[:, joint_index("right_knee"), 0] = 0.6 * np.maximum(0, -np.sin(2 * np.pi * t + 1))
    axis_angle[:, joint_index("left_shoulder"), 2] = -1.2  # arms down from the T-pose
    axis_angle[:, joint_index("right_shoulder"), 2] = 1.2
    root = np.zeros((frames, 3))
    root[:, 1] = -REST_JOINTS[:, 1].min() + REST_JOINTS[0, 1]
    root[:, 2] = speed * t
    joints, _ = forward_kinematics(axis_angle_to_matrix(axis_angle), root)
    return joints.astype(np.float32)


@pytest.fixture(scope="session")
def staged_addon(tmp_path_factory):
    """The extension package as build_addon.py stages it, importable as `irg_motion`."""
    sys.path.insert(0, str(ROOT))
    import build_addon

    folder = tmp_path_factory.mktemp("addon")
    build_addon.stage(folder)
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(build_addon.manifest()["id"])
    finally:
        sys.path.remove(str(folder))


@pytest.fixture
def addon(staged_addon):
    """A factory-fresh Blender with the extension registered; unregistered (sockets closed) afterwards."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    staged_addon.register()
    try:
        yield staged_addon
    finally:
        staged_addon.unregister()


def settings():
    import bpy

    return bpy.context.scene.irg_motion


def add_round(addon, armature: str, job: str = "job-a", index: int = 0, joints=None, **fields) -> int:
    fields.setdefault("prompt", "a person walks forward")
    return addon.rounds.add_round(settings(), job=job, index=index, armature=armature,
                                  joints=walk_joints() if joints is None else joints, fps=20.0, **fields)


def fcurve_frames(action) -> int:
    """Keys on the action's first F-curve, whatever the Blender version."""
    from irg_motion.retarget.blender_compat import action_fcurves

    return len(action_fcurves(action)[0].keyframe_points)
