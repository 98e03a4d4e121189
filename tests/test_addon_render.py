"""A round on the SMPL preview rig, rendered headless (Workbench; Cycles CPU where Workbench has no GPU context):
the armature gets a visible shape (a stick per bone, skinned to it, plus the synthetic SMPL body) and the
picture must show it. IRG_SAVE_RENDER=path keeps the picture (docs/images/blender_round.png is made so)."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from test_addon_support import add_round, addon, settings, staged_addon, walk_joints  # noqa: F401

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.slow


def add_bone_sticks(rig) -> object:
    """A box around every bone, skinned to it: the armature as a solid figure a render can see."""
    verts, faces, owners = [], [], []
    for bone in rig.data.bones:
        if bone.name == "root":
            continue
        head, tail = np.array(bone.head_local), np.array(bone.tail_local)
        axis = tail - head
        side = np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 * np.linalg.norm(axis) else [1.0, 0.0, 0.0])
        side = 0.025 * side / np.linalg.norm(side)
        up = np.cross(axis, side)
        up = 0.025 * up / np.linalg.norm(up)
        base = len(verts)
        for end in (head, tail):
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                verts.append(end + a * side + b * up)
        faces += [[base + i for i in f] for f in ((0, 1, 2, 3), (7, 6, 5, 4), (0, 4, 5, 1), (1, 5, 6, 2),
                                                 (2, 6, 7, 3), (3, 7, 4, 0))]
        owners.append(bone.name)
    mesh = bpy.data.meshes.new("sticks")
    mesh.from_pydata([v.tolist() for v in verts], [], faces)
    sticks = bpy.data.objects.new("sticks", mesh)
    bpy.context.scene.collection.objects.link(sticks)
    sticks.parent = rig
    for k, name in enumerate(owners):
        sticks.vertex_groups.new(name=name).add(list(range(8 * k, 8 * k + 8)), 1.0, "REPLACE")
    sticks.modifiers.new("Armature", "ARMATURE").object = rig
    return sticks


def render(path: str, size=(480, 360)) -> np.ndarray:
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = path
    try:
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.display.shading.color_type = "OBJECT"
        bpy.ops.render.render(write_still=True)
    except RuntimeError:  # no GPU context at all: the CPU path tracer needs none
        scene.render.engine = "CYCLES"
        scene.cycles.device, scene.cycles.samples = "CPU", 4
        bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(path)
    try:
        pixels = np.array(image.pixels[:], dtype=np.float32).reshape(size[1], size[0], 4)
    finally:
        bpy.data.images.remove(image)
    return pixels


def test_a_round_renders_headless_and_shows_the_figure(addon, tmp_path):
    from smpl_synthetic import write_synthetic_smpl

    rig = addon.rounds.create_preview_rig()
    obj = bpy.data.objects[rig]
    s = settings()
    write_synthetic_smpl(tmp_path / "smpl")
    s.target, s.smpl_folder = obj, str(tmp_path / "smpl")
    assert bpy.ops.irg_motion.add_smpl_body() == {"FINISHED"}
    sticks = add_bone_sticks(obj)
    body = bpy.data.objects[f"{rig}_body"]
    body.color, sticks.color = (0.9, 0.45, 0.2, 1.0), (0.3, 0.55, 0.9, 1.0)
    add_round(addon, rig, joints=walk_joints(40, speed=0.6))
    scene = bpy.context.scene
    scene.frame_set(12)
    world = bpy.data.worlds.new("bg")
    scene.world = world
    world.color = (0.05, 0.05, 0.06)

    import mathutils
    aim = obj.matrix_world @ obj.pose.bones["pelvis"].head - mathutils.Vector((0.0, 0.0, 0.05))
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.location = aim + mathutils.Vector((3.0, -4.0, 0.5))
    camera.rotation_euler = (aim - camera.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera

    path = str(tmp_path / "round.png")
    pixels = render(path)

    background = pixels[0, 0, :3]
    figure = np.abs(pixels[..., :3] - background).max(axis=-1) > 0.1
    assert 0.01 < figure.mean() < 0.6, f"{figure.mean():.3%} of the picture differs from the background"
    rows, cols = np.nonzero(figure)
    assert np.ptp(rows) > 0.4 * pixels.shape[0]  # a standing figure: tall, not a speck
    orange = (pixels[..., 0] > pixels[..., 2] + 0.15) & figure  # the skinned body is in the picture too
    assert orange.sum() > 50
    assert os.path.getsize(path) < 300_000
    if os.environ.get("IRG_SAVE_RENDER"):
        shutil.copy(path, os.environ["IRG_SAVE_RENDER"])
