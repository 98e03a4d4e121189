"""The extension end to end against a real `irg-motion serve` on loopback, the test driving the pump as
Blender's timer would: step-mode rounds on a Rigify and a Mixamo rig, refine with an instruction, accept,
export, re-import; and the ways a live job gets interrupted (backend killed, armature deleted, file loaded)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from test_addon_client import _server_missing, connect_when_up, free_port, pump_until
from test_addon_support import ROOT, addon, settings, staged_addon  # noqa: F401

bpy = pytest.importorskip("bpy")
pytest.importorskip("zmq")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_server_missing() is not None, reason=str(_server_missing()))]
PROMPT = "a person walks forward"


def start_server(log_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "backend.cli.main", "serve", "--device", "cpu", "--bind", endpoint],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return server, endpoint, log


def stop_server(server, log) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    proc, endpoint, log = start_server(log_path)
    try:
        yield proc, endpoint, log_path
    finally:
        stop_server(proc, log)


def connect(addon, server) -> None:
    proc, endpoint, log_path = server
    settings().address = endpoint
    connect_when_up(addon, proc, log_path, timeout=90.0)


def start_job(rig: str, seed: int = 7, seconds: float = 2.0) -> None:
    s = settings()
    s.target, s.prompt, s.seconds, s.max_rounds, s.mode, s.seed = bpy.data.objects[rig], PROMPT, seconds, 3, "STEP", seed
    assert bpy.ops.irg_motion.generate() == {"FINISHED"}


def wait_for_round(addon, index: int, timeout: float = 60.0):
    s = settings()
    pump_until(addon, lambda: any(e.index == index for e in s.rounds) or "Stopped" in s.progress, timeout=timeout)
    return next(e for e in s.rounds if e.index == index)


def world_turns(obj, bone_names: list[str], frames: range) -> np.ndarray:
    """(frames, bones, 3, 3): each bone's world rotation. Absolute, not relative to the rest pose: an FBX with no
    skinned mesh carries no bind pose, so the re-imported rest is the pose at export time."""
    scene = bpy.context.scene
    world = np.array(obj.matrix_world)
    out = []
    for f in frames:
        scene.frame_set(f)
        row = []
        for n in bone_names:
            posed = (world @ np.array(obj.pose.bones[n].matrix))[:3, :3]
            row.append(posed / np.linalg.norm(posed, axis=0))  # the Mixamo rig's 0.01 scale off
        out.append(row)
    return np.array(out)


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    rel = np.einsum("...ji,...jk->...ik", a, b)
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.mark.parametrize("preset", ["rigify", "mixamo"])
def test_refine_with_instruction_accept_and_export_round_trip(addon, server, tmp_path, preset):
    from irg_motion.retarget.blender_compat import action_fcurves
    from irg_motion.retarget.blender_io import build_preset_rig

    connect(addon, server)
    rig = build_preset_rig(preset).name
    obj = bpy.data.objects[rig]
    s = settings()
    start_job(rig)
    first = wait_for_round(addon, 0)
    assert first.error == "" and first.action in bpy.data.actions, (s.progress, s.message, first.error)
    first_action = first.action
    assert "accept, reject or refine" in s.progress

    # Round 1 is refused with the animator's own words; round 2 follows them and is accepted.
    s.rounds_index = 0
    s.refine_instruction = "walk faster with bigger arm swings"
    assert bpy.ops.irg_motion.refine() == {"FINISHED"}
    second = wait_for_round(addon, 1)
    assert second.error == "", (s.progress, s.message, second.error)
    assert len(s.rounds) == 2 and s.rounds_index == 1
    assert bpy.ops.irg_motion.accept() == {"FINISHED"}
    assert s.progress == "Accepted" and first_action not in bpy.data.actions
    assert [e.status for e in s.rounds] == ["ACCEPTED"]
    entry = s.rounds[0]
    take = entry.action
    frames = len(addon.rounds.round_joints(entry))
    assert frames >= 20 and obj.animation_data.action.name == take

    # Keys on every mapped bone for every frame of the take.
    rig_map = addon.rounds.rig_map_for([b.name for b in obj.data.bones], s.rig_map)
    mapped = sorted(set(rig_map.bones.values()))
    assert len(mapped) == 22
    curves = action_fcurves(bpy.data.actions[take])
    for bone in mapped:
        rot = [c for c in curves if c.data_path == f'pose.bones["{bone}"].rotation_quaternion']
        assert len(rot) == 4, f"{bone} has no rotation keys"
        for c in rot:
            keyed = [k.co[0] for k in c.keyframe_points]
            assert keyed == list(range(1, frames + 1)), f"{bone}[{c.array_index}]: {len(keyed)} keys for {frames} frames"
    before = world_turns(obj, mapped, range(1, frames + 1))

    # Export the take, open it in a fresh scene: one take, same length, same rotations.
    bpy.context.view_layer.objects.active = obj
    path = str(tmp_path / "take.fbx")
    assert bpy.ops.irg_motion.export_take(filepath=path, format="FBX", preset="BLENDER") == {"FINISHED"}
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=path)
    assert len(bpy.data.actions) == 1
    start, end = (int(round(f)) for f in bpy.data.actions[0].frame_range)
    assert end - start + 1 == frames
    imported = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    after = world_turns(imported, mapped, range(start, end + 1))
    worst = angle_deg(before, after).max()  # take frame k against take frame k (the import starts it one frame later)
    assert worst < 0.5, f"re-imported rotations differ by up to {worst:.3f} degrees"


def test_backend_killed_mid_job_is_reported(addon, tmp_path):
    log_path = tmp_path / "serve.log"
    proc, endpoint, log = start_server(log_path)
    try:
        connect(addon, (proc, endpoint, log_path))
        rig = addon.rounds.create_preview_rig()
        s = settings()
        start_job(rig, seconds=4.0)
        pump_until(addon, lambda: s.progress.startswith("round 1") and "waiting" not in s.progress, timeout=30.0)
        proc.kill()  # mid-job: no goodbye, no reply
        proc.wait()
        elapsed, slowest = pump_until(addon, lambda: "not responding" in s.message, timeout=8.0)
    finally:
        stop_server(proc, log)
    assert elapsed < 4.5 and slowest < 0.1
    assert s.progress == "Stopped: backend not responding" and s.status == "Not connected" and not s.connected
    assert addon.client.session() is None and not addon.client.pump()
    assert "Could not use" not in s.message  # reported, not an exception caught by the pump


def test_armature_deleted_mid_job_is_explained(addon, server):
    connect(addon, server)
    rig = addon.rounds.create_preview_rig()
    s = settings()
    start_job(rig)
    bpy.data.objects.remove(bpy.data.objects[rig])  # the animator deletes the target while the model works
    entry = wait_for_round(addon, 0)
    assert entry.action == "" and f"'{rig}' no longer exists" in entry.error
    assert s.message.startswith("Round 1 arrived but could not be shown") and "pick one in the panel" in s.message
    assert "Could not use" not in s.message
    assert bpy.ops.irg_motion.cancel() == {"FINISHED"}
    pump_until(addon, lambda: s.progress == "Cancelled", timeout=10.0)


@pytest.mark.parametrize("load", ["read_homefile", "read_factory_settings"])
def test_file_loaded_mid_job_stops_it_cleanly(addon, server, load):
    connect(addon, server)
    rig = addon.rounds.create_preview_rig()
    start_job(rig)
    addon.client.pump()
    assert addon.client.live_job()

    getattr(bpy.ops.wm, load)()

    assert addon.client.session() is None and not addon.client.live_job()
    assert not addon.client.pump()  # nothing to raise on: the connection went with the old file
    s = settings()
    assert "Loading a file stopped the running job" in s.message
    assert s.progress == "Stopped: file loaded" and s.status == "Not connected" and len(s.rounds) == 0
