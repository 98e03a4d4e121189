"""The add-on's end of the wire: one DEALER connection and the pump that drains it.

Blender's Python API is main-thread only, so there is no worker thread: a module-level timer calls
`pump()`, which reads whatever has arrived within a small time budget and returns at once. Headless
runs have no timers, so tests call `pump()` directly. All panel state lives in `scene.irg_motion`;
the only module state is the open connection, found again through the scene's name.
"""
from __future__ import annotations

import ipaddress
import time
import traceback

import bpy
import zmq

from . import protocol, rounds

PUMP_INTERVAL = 0.05  # seconds between timer ticks while something is outstanding
PUMP_BUDGET = 0.008   # seconds a tick may spend reading before it yields to the UI
# Silence after a request before the panel says so; the server heartbeats well inside this.
NOT_RESPONDING_AFTER = protocol.HEARTBEAT_TIMEOUT


class Session:
    """One connection to one backend, with the job it is running (at most one)."""

    def __init__(self, endpoint: str, scene_name: str):
        self.endpoint = endpoint
        self.scene_name = scene_name
        self.context = zmq.Context()
        self.client = protocol.Client(endpoint, context=self.context)
        self.sent_at = 0.0       # monotonic time of the last request
        self.awaiting = set()    # replies still expected outside a job: "welcome", "pong"
        self.job = ""            # the live job; replies for any other job are dropped
        self.step = False        # whether the live job pauses after each round
        self.cancelling = ""
        self.ignored = 0         # replies dropped as stale, counted for diagnostics

    def send(self, msg_type: str, *args, **kwargs):
        self.sent_at = time.monotonic()
        return getattr(self.client, msg_type)(*args, **kwargs)

    @property
    def busy(self) -> bool:
        return bool(self.awaiting or self.job or self.cancelling)

    def close(self) -> None:
        self.client.close()
        self.context.term()


_session: Session | None = None


def check_endpoint(address: str, online_access: bool) -> str:
    """The endpoint to connect to, or ValueError with the reason. Non-loopback hosts need online access."""
    address = address.strip()
    if not address.startswith("tcp://") or ":" not in address[6:]:
        raise ValueError(f"Backend address '{address}' must look like tcp://127.0.0.1:5555")
    host, _, port = address[6:].rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Backend address '{address}' has no valid port")
    host = host.strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False  # a host name other than localhost
    if not loopback and not online_access:
        raise ValueError(f"'{host}' is not this computer: allow Online Access in Preferences > System to reach it")
    return address


def session() -> Session | None:
    return _session


_closed_by_load = ""  # what loading a file interrupted, told to the new file's panel by after_load()


def close_for_load() -> None:
    """A file is about to load: its scenes replace the one the job reports into, so the job ends here."""
    global _closed_by_load
    s = _session
    if s is not None and (s.job or s.awaiting):
        _closed_by_load = ("Loading a file stopped the running job; its rounds were not kept. Press Generate "
                           "again in this file." if s.job else "Loading a file closed the connection to the "
                           "backend; press Test Connection.")
        try:  # the backend stops computing rounds nobody will receive (LINGER 0 may still drop this)
            if s.job:
                s.send("cancel", s.job)
        except zmq.ZMQError:
            pass
    close()


def after_load() -> None:
    """Put the reason a job stopped into the freshly loaded file's panel."""
    global _closed_by_load
    if _closed_by_load:
        for scene in bpy.data.scenes:
            settings = getattr(scene, "irg_motion", None)
            if settings is not None:
                settings.message, settings.progress = _closed_by_load, "Stopped: file loaded"
                settings.status, settings.connected = "Not connected", False
        _closed_by_load = ""


def close() -> None:
    """Close the connection at once (LINGER 0): on unregister, file load, quit, or a dead backend."""
    global _session
    if _session is not None:
        _session.close()
        _session = None
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)


def _connect(scene) -> Session:
    global _session
    endpoint = check_endpoint(scene.irg_motion.address, bpy.app.online_access)
    if _session is not None and (_session.endpoint != endpoint or _session.scene_name != scene.name):
        close()
    if _session is None:
        _session = Session(endpoint, scene.name)
    return _session


def _start_timer() -> None:
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=PUMP_INTERVAL, persistent=True)


def _tick():
    return PUMP_INTERVAL if pump() else None


# -- requests (called by operators) ---------------------------------------------------------------

def test_connection(scene) -> None:
    settings = scene.irg_motion
    s = _connect(scene)
    s.send("hello", client=f"blender {bpy.app.version_string}")
    s.send("ping")
    s.awaiting |= {"welcome", "pong"}
    settings.status, settings.message = f"Connecting to {s.endpoint}...", ""
    _start_timer()


def generate(scene, armature: str) -> str:
    settings = scene.irg_motion
    s = _connect(scene)
    if s.job:
        s.send("cancel", s.job)
    s.job = s.send("generate", settings.prompt, seconds=settings.seconds, max_rounds=settings.max_rounds,
                   mode=settings.mode.lower(), seed=settings.seed, do_sample=settings.seed != 0)
    s.step = settings.mode == "STEP"
    settings.job_armature, settings.job_prompt = armature, settings.prompt
    settings.progress = f"round 1 of {settings.max_rounds}: waiting for the backend"
    settings.message = ""
    _start_timer()
    return s.job


def cancel(scene) -> None:
    settings = scene.irg_motion
    s = _session
    if s is None or not s.job:
        settings.progress = "Nothing to cancel"
        return
    s.send("cancel", s.job)
    s.cancelling, s.job = s.job, ""
    settings.progress = "Cancelling..."
    _start_timer()


def live_job() -> str:
    return _session.job if _session is not None else ""


def refine(scene, job: str, round_index: int, instruction: str | None) -> None:
    """Ask a paused step-mode job for another round after `round_index`, following `instruction` if given."""
    s = _session
    if s is None or not job or s.job != job:
        raise rounds.RoundError("Refining needs a running step-mode job: set Mode to Step and Generate")
    s.send("refine", job, round_index, instruction or None)
    scene.irg_motion.progress = f"round {round_index + 2} of {scene.irg_motion.max_rounds}: refining"
    _start_timer()


def accept(scene, job: str) -> None:
    """The animator settled on a round of the live job: a step job is accepted, an auto job stops
    computing rounds nobody will look at. Later replies for the job are dropped."""
    s = _session
    if s is not None and s.job and s.job == job:
        s.send("accept" if s.step else "cancel", job)
        s.job = ""
        scene.irg_motion.progress = "Accepted"


# -- the pump -------------------------------------------------------------------------------------

def pump(budget: float = PUMP_BUDGET) -> bool:
    """Handle every reply that has arrived, within `budget` seconds; True while more are expected."""
    s = _session
    if s is None:
        return False
    scene = bpy.data.scenes.get(s.scene_name)
    if scene is None:
        close()
        return False
    settings = scene.irg_motion
    for msg in s.client.drain(budget):
        try:
            _handle(s, settings, msg)
        except rounds.RoundError as exc:
            settings.message = str(exc)
        except Exception as exc:  # noqa: BLE001 - a timer that raises is dropped by Blender: the pump must live
            traceback.print_exc()
            settings.message = f"Could not use a '{msg.type}' reply from the backend: {exc}"
    if s.busy and not s.client.alive and time.monotonic() - s.sent_at > NOT_RESPONDING_AFTER:
        settings.status = "Not connected"
        settings.connected = False
        settings.message = (f"Backend not responding at {s.endpoint}; start it with 'irg-motion serve' "
                            "and press Test Connection")
        if s.job or s.cancelling:
            settings.progress = "Stopped: backend not responding"
        close()  # drops queued requests, so a backend started later never runs a stale job
        return False
    return s.busy


def _handle(s: Session, settings, msg: protocol.Message) -> None:
    if msg.type in protocol.JOB_TYPES and msg.job != s.job:
        if msg.job == s.cancelling and msg.type in ("cancelled", "done"):
            s.cancelling = ""
            settings.progress = "Cancelled"
        else:
            s.ignored += 1
        return
    if msg.type == "welcome":
        s.awaiting.discard("welcome")
        settings.connected = True
        settings.model, settings.device = msg["model_id"], msg["device"]
        settings.status = "Connected"
        settings.message = ""
    elif msg.type == "pong":
        s.awaiting.discard("pong")
        if msg.get("t") is not None:
            settings.latency_ms = (time.perf_counter() - msg["t"]) * 1000.0
        settings.model, settings.device = msg["model_id"], msg["device"]
    elif msg.type == "progress":
        settings.progress = f"round {msg['round'] + 1} of {settings.max_rounds}: {msg['stage']}"
    elif msg.type == "round":
        _on_round(s, settings, msg)
    elif msg.type == "done":
        settings.progress = f"Done: {msg['rounds']} round(s), {msg['reason']}"
        s.job = ""
    elif msg.type == "cancelled":
        settings.progress = "Cancelled"
        s.job = ""
    elif msg.type == "error":
        settings.message = f"Backend error ({msg['code']}): {msg['message']}"
        s.awaiting.clear()
        if msg.job is not None and msg.job == s.job:
            settings.progress = "Stopped by a backend error"
            s.job = ""


def _on_round(s: Session, settings, msg: protocol.Message) -> None:
    index = msg["round"]
    position = rounds.add_round(
        settings, job=msg.job, index=index, armature=settings.job_armature, prompt=settings.job_prompt,
        joints=msg.arrays["joints"], fps=float(msg["fps"]), assessment=msg["assessment"],
        instruction=msg["instruction"], is_final=msg["final"], error=msg["error"],
    )
    if msg.get("warnings"):  # how the backend read the prompt (words mapped to ones the model knows)
        settings.message = "Prompt: " + "; ".join(msg["warnings"])
    entry = settings.rounds[position]
    if entry.error and not msg["error"]:  # e.g. the armature was deleted mid-job
        settings.message = f"Round {index + 1} arrived but could not be shown: {entry.error}"
    settings.progress = f"round {index + 1} of {settings.max_rounds}: ready" + (" (final)" if msg["final"] else "")
    if settings.mode == "STEP" or msg["final"]:
        settings.progress += " - accept, reject or refine"
    if bpy.ops.ed.undo_push.poll():  # a timer is outside any operator: record the round for Ctrl+Z
        bpy.ops.ed.undo_push(message=f"IRG Motion round {index + 1}")
