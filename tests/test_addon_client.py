"""The socket pump in the real bpy wheel against real ZeroMQ sockets on loopback: a dead backend, a
scripted ROUTER (stale jobs, malformed replies), and a real `irg-motion serve` process."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_addon_support import ROOT, addon, fcurve_frames, settings, staged_addon, walk_joints  # noqa: F401

bpy = pytest.importorskip("bpy")
zmq = pytest.importorskip("zmq")
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pump_until(addon, done, timeout: float) -> tuple[float, float]:
    """Call the pump like the timer does until done(); returns (elapsed, slowest single pump call)."""
    start, slowest = time.monotonic(), 0.0
    while not done():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"gave up after {timeout} s: progress={settings().progress!r} "
                                 f"message={settings().message!r} status={settings().status!r}")
        t = time.perf_counter()
        addon.client.pump()
        slowest = max(slowest, time.perf_counter() - t)
        time.sleep(0.02)
    return time.monotonic() - start, slowest


@pytest.fixture
def router():
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        yield sock, f"tcp://127.0.0.1:{port}"
    finally:
        sock.close(linger=0)
        ctx.term()


def serve_requests(router, protocol, replies_for, until: float = 2.0) -> list[str]:
    """Answer requests with replies_for(msg) (lists of frame lists) until a quiet `until` seconds pass."""
    seen = []
    while router.poll(int(until * 1000)):
        peer, *frames = router.recv_multipart()
        msg = protocol.decode(frames)
        if msg.type == "heartbeat":
            router.send_multipart([peer] + protocol.encode("heartbeat"))
            continue
        seen.append(msg.type)
        for reply in replies_for(msg):
            router.send_multipart([peer] + reply)
        if msg.type in ("generate", "hello"):
            break
    return seen


def test_dead_backend_is_reported_within_3_seconds_without_blocking(addon):
    settings().address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    bpy.ops.irg_motion.test_connection()

    elapsed, slowest = pump_until(addon, lambda: "not responding" in settings().message, timeout=5.0)

    assert elapsed < 3.0
    assert slowest < 0.05  # every tick returns promptly: the UI never freezes
    assert not settings().connected
    assert addon.client.session() is None  # socket closed, nothing queued for a later backend


def test_disabling_the_extension_closes_the_connection(addon, router):
    _, endpoint = router
    settings().address = endpoint
    bpy.ops.irg_motion.test_connection()
    session = addon.client.session()
    assert session is not None and not session.context.closed

    addon.unregister()
    try:
        assert addon.client.session() is None
        assert session.context.closed  # term() returned: every socket was closed with LINGER 0
        assert not bpy.app.timers.is_registered(addon.client._tick)
    finally:
        addon.register()  # the fixture unregisters at the end


def test_remote_address_needs_online_access(addon):
    with pytest.raises(ValueError, match="Online Access"):
        addon.client.check_endpoint("tcp://192.0.2.7:5555", online_access=False)
    assert addon.client.check_endpoint("tcp://192.0.2.7:5555", online_access=True)
    assert addon.client.check_endpoint("tcp://localhost:5555", online_access=False)
    with pytest.raises(ValueError, match="tcp://"):
        addon.client.check_endpoint("127.0.0.1:5555", online_access=True)

    settings().address = "tcp://192.0.2.7:5555"
    with pytest.raises(RuntimeError, match="Online Access"):  # how bpy.ops surfaces an ERROR report
        bpy.ops.irg_motion.test_connection()
    assert "Online Access" in settings().message and addon.client.session() is None


def test_pump_applies_live_rounds_and_ignores_stale_and_malformed(addon, router):
    router, endpoint = router
    protocol = addon.protocol
    rig = addon.rounds.create_preview_rig()
    s = settings()
    s.address, s.target, s.max_rounds = endpoint, bpy.data.objects[rig], 3
    joints = walk_joints(30)

    def replies(msg):
        if msg.type != "generate":
            return []
        job = msg.job
        return [
            protocol.encode("progress", job, round=0, stage="generating", tokens=12),
            protocol.encode("round", "an-old-job", arrays={"joints": joints}, round=0, codes=[], assessment="old",
                            instruction="", final=False, error="", fps=20.0),
            [b"\x93garbage"],
            protocol.encode("round", job, arrays={"joints": joints}, round=0, codes=[1, 2], fps=20.0, final=False,
                            assessment="The walk is too slow for the prompt.", instruction="Walk faster.", error=""),
            protocol.encode("round", job, arrays={"joints": np.zeros((0, 22, 3), np.float32)}, round=1, codes=[],
                            fps=20.0, final=False, assessment="", instruction="", error="no motion in the trace"),
            protocol.encode("progress", job, round=2, stage="assessing", tokens=30),
        ]

    assert bpy.ops.irg_motion.generate() == {"FINISHED"}
    addon.client.pump()  # sends the generate
    assert serve_requests(router, protocol, replies) == ["generate"]
    pump_until(addon, lambda: "assessing" in s.progress, timeout=3.0)

    assert s.progress == "round 3 of 3: assessing"
    assert len(s.rounds) == 2  # the old job's round was dropped
    assert s.rounds[1].error == "no motion in the trace" and s.rounds[1].action == ""  # listed, with its reason
    entry = s.rounds[0]
    assert entry.assessment.startswith("The walk is too slow") and entry.instruction == "Walk faster."
    assert fcurve_frames(bpy.data.actions[entry.action]) == 30
    assert "bad reply" in s.message  # the garbage frame became a readable message, not a crash
    assert addon.client.session().ignored == 1

    bpy.ops.irg_motion.cancel()
    addon.client.pump()
    assert serve_requests(router, protocol, lambda m: [protocol.encode("cancelled", m.job)] if m.type == "cancel"
                          else [], until=0.5) == ["cancel"]
    pump_until(addon, lambda: s.progress == "Cancelled", timeout=3.0)


def _server_missing() -> str | None:
    if not (ROOT / "backend" / "server.py").exists():
        return "backend/server.py has not landed yet"
    if not (ROOT / "backend" / "models" / "builtin" / "llm" / "model.safetensors").exists():
        return "the built-in model (backend/models/builtin/llm/) has not landed yet"
    return None


def connect_when_up(addon, server, log_path: Path, timeout: float) -> None:
    """Press Test Connection until the server has loaded its model and answers, as an animator would."""
    s = settings()
    deadline = time.monotonic() + timeout
    while not s.connected:
        assert server.poll() is None, f"server exited: {log_path.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"server not up after {timeout} s: {log_path.read_text()[-2000:]}"
        bpy.ops.irg_motion.test_connection()
        pump_until(addon, lambda: s.connected or "not responding" in s.message, timeout=5.0)


@pytest.mark.skipif(_server_missing() is not None, reason=str(_server_missing()))
def test_generate_against_a_real_server(addon, tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    log_path = tmp_path / "serve.log"
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "backend.cli.main", "serve", "--device", "cpu", "--bind", endpoint],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        s = settings()
        s.address = endpoint
        connect_when_up(addon, server, log_path, timeout=90.0)  # model loading on 2 shared cores
        pump_until(addon, lambda: s.latency_ms > 0, timeout=3.0)
        assert s.model and s.device

        rig = addon.rounds.create_preview_rig()
        s.target, s.prompt, s.seconds, s.max_rounds, s.mode = bpy.data.objects[rig], "a person walks forward", 3.0, 2, "AUTO"
        assert bpy.ops.irg_motion.generate() == {"FINISHED"}
        pump_until(addon, lambda: s.progress.startswith("Done") or "Stopped" in s.progress, timeout=90.0)

        assert s.progress.startswith("Done"), (s.progress, s.message, log_path.read_text()[-2000:])
        assert len(s.rounds) >= 1
        for entry in s.rounds:
            assert entry.error == "" and entry.action in bpy.data.actions
            assert fcurve_frames(bpy.data.actions[entry.action]) == len(addon.rounds.round_joints(entry))
        assert bpy.data.objects[rig].animation_data.action.name == s.rounds[-1].action
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_step_mode_reject_refine_and_accept_reach_the_backend(addon, router):
    router, endpoint = router
    protocol = addon.protocol
    rig = addon.rounds.create_preview_rig()
    s = settings()
    s.address, s.target, s.mode, s.max_rounds = endpoint, bpy.data.objects[rig], "STEP", 4
    requests = []

    def exchange(send_round: int | None) -> None:
        """Pump until the backend sees one request (heartbeats answered), reply, pump the reply in."""
        deadline = time.monotonic() + 3.0
        while True:
            addon.client.pump()
            if router.poll(20):
                peer, *frames = router.recv_multipart()
                msg = protocol.decode(frames)
                if msg.type == "heartbeat":
                    router.send_multipart([peer] + protocol.encode("heartbeat"))
                    continue
                requests.append((msg.type, msg.get("round"), msg.get("instruction")))
                break
            assert time.monotonic() < deadline, requests
        if send_round is not None:
            router.send_multipart([peer] + protocol.encode(
                "round", msg.job, arrays={"joints": walk_joints(20)}, round=send_round, codes=[1], fps=20.0,
                final=False, assessment=f"assessment {send_round}", instruction="Raise the arms.", error=""))
            pump_until(addon, lambda: any(e.index == send_round for e in s.rounds), timeout=3.0)

    bpy.ops.irg_motion.generate()
    exchange(send_round=0)
    bpy.ops.irg_motion.reject()  # the model refines with its own instruction
    exchange(send_round=1)
    s.refine_instruction = "jump higher"
    bpy.ops.irg_motion.refine()
    exchange(send_round=2)
    bpy.ops.irg_motion.accept()
    exchange(send_round=None)

    assert [r[0] for r in requests] == ["generate", "refine", "refine", "accept"]
    assert requests[1][1:] == (0, None) and requests[2][1:] == (1, "jump higher")
    assert [e.index for e in s.rounds] == [2] and s.rounds[0].status == "ACCEPTED"  # accept drops the job's others
    assert s.progress == "Accepted" and addon.client.live_job() == ""
