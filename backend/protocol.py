"""The wire protocol between the Blender add-on (DEALER) and the backend (ROUTER), and a small client.

Every message is multipart: one msgpack header (`v`, `type`, `job`, fields, and `arrays`, the shape and
dtype of each array frame) followed by one raw little-endian float32 frame per array. Never pickle.
`docs/protocol.md` is the written contract; this module is its only implementation, and it imports
nothing heavier than numpy, msgpack and pyzmq so the add-on can vendor it as a single file.
"""
from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

import msgpack
import numpy as np
import zmq

PROTOCOL_VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
JOINT_SET = "smpl22"
NUM_JOINTS = 22
FLOAT32 = "<f4"

# Limits checked before anything is unpacked or allocated.
MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAYS = 5  # a round's joints plus its four optional SMPL parameter arrays
MAX_FRAMES = 1 + MAX_ARRAYS
MAX_ARRAY_DIMS = 4
MAX_ARRAY_ELEMENTS = 20 * 600 * NUM_JOINTS * 3  # ten minutes of SMPL-22 at 20 fps
MAX_JOB_ID_CHARS = 64
MAX_TEXT_CHARS = 16 * 1024
MAX_CODES = 4096
# Hard cap per frame, enforced by ZeroMQ itself (ZMQ_MAXMSGSIZE): a peer sending more is disconnected.
MAX_REPLY_FRAME_BYTES = MAX_ARRAY_ELEMENTS * 4 + MAX_HEADER_BYTES
MAX_REQUEST_FRAME_BYTES = 4 * MAX_HEADER_BYTES

# The client sends a heartbeat every HEARTBEAT_INTERVAL while it is pumped; the server answers each one,
# so a client that hears nothing for HEARTBEAT_TIMEOUT knows the server is gone.
HEARTBEAT_INTERVAL = 0.5
HEARTBEAT_TIMEOUT = 2.0
# The server drops the jobs of a client it has heard nothing from (not even a heartbeat) for this long, by
# default; `irg-motion serve --client-timeout` changes it and `welcome.limits.client_timeout` says what it is.
CLIENT_TIMEOUT = 60.0

STAGES = ("planning", "generating", "assessing", "decoding")
MODES = ("auto", "step")

_NUM = (int, float)
_OPT_STR = (str, type(None))
_OPT_INT = (int, type(None))

# type -> {field: (allowed python types, required)}. Fields not listed here are ignored (forward compatible).
REQUESTS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "hello": {"client": ((str,), False)},
    "generate": {
        "prompt": ((str,), True),
        "seconds": (_NUM, False),
        "max_rounds": ((int,), False),
        "mode": ((str,), False),
        "seed": (_OPT_INT, False),
        "do_sample": ((bool,), False),
        "temperature": (_NUM, False),
        "top_p": (_NUM, False),
    },
    "refine": {"round": ((int,), True), "instruction": (_OPT_STR, False)},
    "accept": {},
    "cancel": {},
    "ping": {"t": (_NUM, False)},
    "heartbeat": {},
}
REPLIES: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "welcome": {
        "model_id": ((str,), True),
        "device": ((str,), True),
        "fps": (_NUM, True),
        "joints": ((str,), True),
        "limits": ((dict,), True),
        "capabilities": ((list,), True),
    },
    "progress": {"round": ((int,), True), "stage": ((str,), True), "tokens": ((int,), True)},
    "round": {
        "round": ((int,), True),
        "codes": ((list,), True),
        "assessment": ((str,), True),
        "instruction": ((str,), True),
        "final": ((bool,), True),
        "error": ((str,), True),
        "fps": (_NUM, True),
        "user_instruction": (_OPT_STR, False),
        "warnings": ((list,), False),
    },
    "done": {"rounds": ((int,), True), "reason": ((str,), True)},
    "cancelled": {},
    "pong": {"t": (_NUM, False), "model_id": ((str,), True), "device": ((str,), True)},
    "heartbeat": {},
    "error": {"code": ((str,), True), "message": ((str,), True)},
}
# Messages that belong to a job carry its id in `job`.
JOB_TYPES = frozenset({"generate", "refine", "accept", "cancel", "progress", "round", "done", "cancelled"})
# type -> {array name: expected shape, None where any length is allowed}
ARRAYS: dict[str, dict[str, tuple[int | None, ...]]] = {"round": {"joints": (None, NUM_JOINTS, 3)}}
# Arrays a message may carry but need not: fitted SMPL parameters (`irg-motion serve --smpl-dir`).
OPTIONAL_ARRAYS: dict[str, dict[str, tuple[int | None, ...]]] = {
    "round": {"smpl_global_orient": (None, 3), "smpl_body_pose": (None, 69), "smpl_betas": (10,),
              "smpl_transl": (None, 3)},
}


class ProtocolError(ValueError):
    """A message that breaks the protocol; `code` is the machine-readable error code sent back."""

    def __init__(self, code: str, message: str, job: str | None = None):
        super().__init__(message)
        self.code = code
        self.job = job


@dataclass
class Message:
    """One decoded message. Arrays are read-only views on the received frames (copy to modify)."""

    type: str
    job: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


def encode(msg_type: str, job: str | None = None, arrays: dict[str, np.ndarray] | None = None,
           **fields: Any) -> list:
    """Header frame + one little-endian float32 frame per array, ready for `send_multipart`."""
    specs, frames = [], []
    for name, array in (arrays or {}).items():
        # ascontiguousarray is a no-op for the usual float32 C-ordered input: no copy on the hot path.
        data = np.ascontiguousarray(array, dtype=FLOAT32)
        specs.append({"name": name, "shape": list(data.shape), "dtype": FLOAT32})
        frames.append(data.data if data.size else b"")
    header = {"v": PROTOCOL_VERSION, "type": msg_type, "job": job, **fields}
    if specs:
        header["arrays"] = specs
    return [msgpack.packb(header, use_bin_type=True)] + frames


def error(code: str, message: str, job: str | None = None) -> list:
    return encode("error", job=job, code=code, message=message)


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def _buffer(frame: Any) -> memoryview:
    return frame.buffer if isinstance(frame, zmq.Frame) else memoryview(frame)


def _unpack_header(raw: memoryview) -> dict:
    if raw.nbytes > MAX_HEADER_BYTES:
        raise ProtocolError("header_too_large", f"header is {raw.nbytes} bytes; the limit is {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(
            raw, raw=False, strict_map_key=True, ext_hook=_reject_ext,
            max_str_len=MAX_HEADER_BYTES, max_bin_len=0, max_array_len=MAX_CODES, max_map_len=64,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many types for garbage; all mean the same to the peer
        raise ProtocolError("bad_message", f"header is not a valid msgpack map ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", f"header must be a msgpack map, got {type(header).__name__}")
    return header


def _short(value: Any, limit: int = 80) -> str:
    """repr() of a peer's value for an error message, cut short: errors never echo a whole header back."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_fields(msg_type: str, header: dict, schema: dict, job: str | None) -> dict:
    fields = {}
    for name, (types, required) in schema.items():
        if name not in header:
            if required:
                raise ProtocolError("bad_field", f"'{msg_type}' needs the field '{name}'", job)
            continue
        value = header[name]
        # bool is an int in Python; a flag is never a number and a number never a flag.
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ProtocolError("bad_field", f"'{msg_type}.{name}' must be {expected}, got {type(value).__name__}", job)
        if isinstance(value, float) and not math.isfinite(value):
            raise ProtocolError("bad_field", f"'{msg_type}.{name}' must be a finite number", job)
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            raise ProtocolError("bad_field", f"'{msg_type}.{name}' is longer than {MAX_TEXT_CHARS} characters", job)
        fields[name] = value
    return fields


def _array_shape(spec: Any, expected: dict, job: str | None) -> tuple[str, tuple[int, ...]]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ProtocolError("bad_array", "each entry of 'arrays' must be a map with name, shape and dtype", job)
    name, shape, dtype = spec["name"], spec.get("shape"), spec.get("dtype")
    if name not in expected:
        raise ProtocolError("bad_array", f"unexpected array {_short(name)}", job)
    if dtype != FLOAT32:
        raise ProtocolError("bad_array", f"array '{name}' must have dtype '{FLOAT32}', got {_short(dtype)}", job)
    if (not isinstance(shape, list) or len(shape) > MAX_ARRAY_DIMS
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise ProtocolError("bad_array", f"array '{name}' needs a shape of at most {MAX_ARRAY_DIMS} non-negative ints", job)
    pattern = expected[name]
    if len(shape) != len(pattern) or any(p is not None and p != d for p, d in zip(pattern, shape)):
        want = "(" + ", ".join("T" if p is None else str(p) for p in pattern) + ")"
        raise ProtocolError("bad_array", f"array '{name}' must have shape {want}, got {tuple(shape)}", job)
    if math.prod(shape) > MAX_ARRAY_ELEMENTS:
        raise ProtocolError("bad_array", f"array '{name}' has more than {MAX_ARRAY_ELEMENTS} elements", job)
    return name, tuple(shape)


def decode(frames: Sequence[Any], replies: bool = False) -> Message:
    """Validate and decode one message (requests by default; `replies=True` on the client side).

    Sizes, counts and shapes are all checked before any array is built; arrays are zero-copy views.
    Raises ProtocolError with the code to send back.
    """
    if not frames:
        raise ProtocolError("bad_message", "empty message")
    if len(frames) > MAX_FRAMES:
        raise ProtocolError("too_many_frames", f"message has {len(frames)} frames; the limit is {MAX_FRAMES}")
    header = _unpack_header(_buffer(frames[0]))
    job = header.get("job")
    job = job if isinstance(job, str) and 0 < len(job) <= MAX_JOB_ID_CHARS else None
    version = header.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # not true, 1.0 or "1"
        raise ProtocolError("bad_version", f"protocol version {_short(version)} is not supported; "
                            f"this side speaks version {PROTOCOL_VERSION}", job)
    msg_type = header.get("type")
    known = REPLIES if replies else REQUESTS
    if not isinstance(msg_type, str) or msg_type not in known:  # a list or map here is unhashable: test str first
        raise ProtocolError("unknown_type", f"unknown message type {_short(msg_type)}; expected one of "
                            + ", ".join(sorted(known)), job)
    if msg_type in JOB_TYPES and job is None:
        raise ProtocolError("bad_field", f"'{msg_type}' needs 'job', a string of 1 to {MAX_JOB_ID_CHARS} characters")
    fields = _check_fields(msg_type, header, known[msg_type], job)

    specs = header.get("arrays", [])
    if not isinstance(specs, list) or len(specs) != len(frames) - 1:
        raise ProtocolError("bad_array", f"header describes {len(specs) if isinstance(specs, list) else 0} arrays "
                            f"but {len(frames) - 1} array frames followed", job)
    expected = ARRAYS.get(msg_type, {})
    allowed = {**expected, **OPTIONAL_ARRAYS.get(msg_type, {})}
    arrays = {}
    for spec, frame in zip(specs, frames[1:]):
        name, shape = _array_shape(spec, allowed, job)
        data = _buffer(frame)
        if data.nbytes != math.prod(shape) * 4:
            raise ProtocolError("bad_array", f"array '{name}' of shape {shape} needs {math.prod(shape) * 4} bytes, "
                                f"got {data.nbytes}", job)
        arrays[name] = np.frombuffer(data, dtype=FLOAT32).reshape(shape)
    missing = set(expected) - set(arrays)
    if missing:
        raise ProtocolError("bad_array", f"'{msg_type}' needs the array(s) " + ", ".join(sorted(missing)), job)
    return Message(msg_type, job, fields, arrays)


def configure_socket(sock: zmq.Socket, max_frame_bytes: int) -> None:
    """Options both ends use: never block on close, bounded queues and frames, transport heartbeats."""
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 1000)
    sock.setsockopt(zmq.RCVHWM, 1000)
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
    # ZMTP heartbeats drop half-open TCP connections so the DEALER reconnects on its own.
    sock.setsockopt(zmq.HEARTBEAT_IVL, int(HEARTBEAT_INTERVAL * 2000))
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(HEARTBEAT_TIMEOUT * 2000))


@dataclass(frozen=True)
class CurveClientKeys:
    """CurveZMQ keys of a client: its own pair and the server's public key (Z85 bytes)."""

    public: bytes
    secret: bytes
    server_public: bytes


class Client:
    """A DEALER connection to the backend, driven by the caller: no threads, no blocking by default.

    Blender calls `drain()` from a timer; each call also sends a heartbeat when one is due, and
    `alive` turns False when the server has been silent for `heartbeat_timeout` seconds.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, context: zmq.Context | None = None,
                 curve: CurveClientKeys | None = None, heartbeat_interval: float = HEARTBEAT_INTERVAL,
                 heartbeat_timeout: float = HEARTBEAT_TIMEOUT):
        self.endpoint = endpoint
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self._sock = (context or zmq.Context.instance()).socket(zmq.DEALER)
        configure_socket(self._sock, MAX_REPLY_FRAME_BYTES)
        self._sock.setsockopt(zmq.RECONNECT_IVL, 200)
        if curve is not None:
            self._sock.curve_publickey = curve.public
            self._sock.curve_secretkey = curve.secret
            self._sock.curve_serverkey = curve.server_public
        self._sock.connect(endpoint)
        self._last_heard = time.monotonic()  # counts from connect: a server that never answers is not alive
        self._last_beat = 0.0

    # -- sending --------------------------------------------------------------------------------
    def send(self, msg_type: str, job: str | None = None, **fields: Any) -> None:
        """Queue one message; raises ConnectionError instead of blocking when the queue to the server is full."""
        try:
            self._sock.send_multipart(encode(msg_type, job, **fields), flags=zmq.NOBLOCK)
        except zmq.Again:
            raise ConnectionError(f"cannot send to {self.endpoint}: the server is not reading") from None

    def hello(self, client: str = "irg-motion") -> None:
        self.send("hello", client=client)

    def generate(self, prompt: str, *, job: str | None = None, seconds: float = 4.0, max_rounds: int = 3,
                 mode: str = "auto", seed: int | None = None, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 0.9) -> str:
        """Start a job and return its id (a fresh random one unless given)."""
        job = job or uuid.uuid4().hex[:12]
        self.send("generate", job, prompt=prompt, seconds=seconds, max_rounds=max_rounds, mode=mode,
                  seed=seed, do_sample=do_sample, temperature=temperature, top_p=top_p)
        return job

    def refine(self, job: str, round: int, instruction: str | None = None) -> None:
        """Reject `round` of a step-mode job; the next round follows `instruction`, or the model's own."""
        self.send("refine", job, round=round, instruction=instruction)

    def accept(self, job: str) -> None:
        self.send("accept", job)

    def cancel(self, job: str) -> None:
        self.send("cancel", job)

    def ping(self) -> float:
        """Send a ping; the pong echoes the returned send time (time.perf_counter) as `t`."""
        t = time.perf_counter()
        self.send("ping", t=t)
        return t

    # -- receiving ------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """Whether the server was heard from within `heartbeat_timeout` (needs regular recv/drain calls)."""
        return time.monotonic() - self._last_heard < self.heartbeat_timeout

    def _beat(self) -> None:
        now = time.monotonic()
        if now - self._last_beat >= self.heartbeat_interval:
            self._last_beat = now
            try:
                self._sock.send_multipart(encode("heartbeat"), flags=zmq.NOBLOCK)
            except zmq.Again:
                pass  # nobody is reading; `alive` will say so

    def recv(self, timeout: float = 0.0) -> Message | None:
        """The next message within `timeout` seconds, or None. Heartbeats are handled here, never returned.

        A reply that breaks the protocol comes back as an `error` message with the reason, not an exception.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._beat()
            wait = max(0.0, deadline - time.monotonic())
            if not self._sock.poll(int(min(wait, self.heartbeat_interval) * 1000), zmq.POLLIN):
                if time.monotonic() >= deadline:
                    return None
                continue
            frames = self._sock.recv_multipart(copy=False)
            self._last_heard = time.monotonic()
            try:
                msg = decode(frames, replies=True)
            except ProtocolError as exc:
                return Message("error", exc.job, {"code": exc.code, "message": f"bad reply from server: {exc}"})
            if msg.type != "heartbeat":
                return msg

    def drain(self, budget: float = 0.008) -> list[Message]:
        """Every message already waiting, within a time budget in seconds (for a UI timer tick)."""
        out: list[Message] = []
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            msg = self.recv(0.0)
            if msg is None:
                break
            out.append(msg)
        return out

    def close(self) -> None:
        self._sock.close(linger=0)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
