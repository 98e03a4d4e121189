"""Add SMPL body in the real bpy wheel: the synthetic SMPL-format model (tests/smpl_synthetic.py) read with
numpy alone, bound to the SMPL preview rig and moved by a round's action."""
from __future__ import annotations

import builtins

import numpy as np
import pytest

from test_addon_support import add_round, addon, settings, staged_addon  # noqa: F401

bpy = pytest.importorskip("bpy")
pytest.importorskip("scipy")  # only to write the synthetic model file the way SMPL's own files are written
pytestmark = pytest.mark.slow


def posed_cube_centres(body) -> np.ndarray:
    """World-space centre of each joint's 8-vertex cube in the evaluated (skinned) mesh."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = body.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    world = np.array(body.matrix_world)
    co = co.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]
    return co.reshape(-1, 8, 3).mean(axis=1)


@pytest.mark.parametrize("chumpy", [False, True])
def test_add_smpl_body_binds_a_mesh_that_follows_the_round(addon, tmp_path, monkeypatch, chumpy):
    from smpl_synthetic import synthetic_smpl_arrays, write_synthetic_smpl

    write_synthetic_smpl(tmp_path / "models", chumpy=chumpy)
    rig = addon.rounds.create_preview_rig()
    s = settings()
    s.target, s.smpl_folder = bpy.data.objects[rig], str(tmp_path / "models")

    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):  # Blender ships no scipy: the add-on must not need it
        if name.startswith("scipy"):
            raise ImportError("no scipy inside Blender")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    assert bpy.ops.irg_motion.add_smpl_body() == {"FINISHED"}
    monkeypatch.undo()

    body = next(o for o in bpy.data.objects if o.type == "MESH")
    expected = synthetic_smpl_arrays()
    assert len(body.data.vertices) == len(expected["v_template"]) and len(body.data.polygons) == len(expected["f"])
    names = {b.name for b in bpy.data.objects[rig].data.bones} - {"root"}
    assert {g.name for g in body.vertex_groups} == names
    modifier = body.modifiers[0]
    assert modifier.type == "ARMATURE" and modifier.object.name == rig and body.parent.name == rig
    # at rest every cube sits on its joint, the model's pelvis on the rig's
    rest = posed_cube_centres(body)
    heads = {pb.name: np.array(bpy.data.objects[rig].matrix_world @ pb.head) for pb in bpy.data.objects[rig].pose.bones}
    assert np.abs(rest[0] - heads["pelvis"]).max() < 1e-4

    add_round(addon, rig)  # a walk: the round's action poses the rig, the modifier the mesh
    bpy.context.scene.frame_set(15)
    posed = posed_cube_centres(body)
    obj = bpy.data.objects[rig]
    heads = {pb.name: np.array(obj.matrix_world @ pb.head) for pb in obj.pose.bones}
    joint_names = addon.retarget.skeleton.JOINT_NAMES
    error = max(np.linalg.norm(posed[j] - heads[name]) for j, name in enumerate(joint_names))
    moved = max(np.linalg.norm(posed[j] - rest[j]) for j in range(len(joint_names)))
    assert error < 1e-3 and moved > 0.1  # the body walks with the rig, cube by cube


def test_add_smpl_body_reads_npz_and_names_what_is_missing(addon, tmp_path):
    from smpl_synthetic import synthetic_smpl_arrays

    rig = addon.rounds.create_preview_rig()
    s = settings()
    s.target = bpy.data.objects[rig]

    s.smpl_folder = str(tmp_path / "nowhere")
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.irg_motion.add_smpl_body()
    assert "does not exist" in s.message and "smpl.is.tue.mpg.de" in s.message

    (tmp_path / "empty").mkdir()
    s.smpl_folder = str(tmp_path / "empty")
    with pytest.raises(RuntimeError, match="SMPL_NEUTRAL"):
        bpy.ops.irg_motion.add_smpl_body()
    assert "has no SMPL neutral model" in s.message
    assert not any(o.type == "MESH" for o in bpy.data.objects)

    arrays = synthetic_smpl_arrays()
    arrays["J_regressor"] = arrays["J_regressor"].toarray()
    np.savez(tmp_path / "empty" / "SMPL_NEUTRAL.npz", **arrays)
    assert bpy.ops.irg_motion.add_smpl_body() == {"FINISHED"} and s.message == ""
    body = next(o for o in bpy.data.objects if o.type == "MESH")
    assert len(body.data.vertices) == len(arrays["v_template"])

    mixamo = addon.retarget.blender_io.build_preset_rig("mixamo")
    s.target = mixamo
    with pytest.raises(RuntimeError, match="not the SMPL preview rig"):
        bpy.ops.irg_motion.add_smpl_body()
