"""The backend service: one ROUTER socket, requests routed to the model worker, replies streamed back.

Only the thread that runs `Server.serve` touches ZeroMQ sockets (they are not thread-safe). The worker
hands its messages over through a queue and wakes this thread through a socket pair it polls.
"""
from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from backend import protocol
from backend.protocol import ProtocolError
from backend.security import CurveServer
from backend.batch_loop import PhaseEngine
from backend.worker import FitBody, JobError, Worker

log = logging.getLogger("irg_motion.server")

CAPABILITIES = ["auto", "step", "refine", "instruction", "cancel", "progress", "sampling", "heartbeat"]
# A client that has sent nothing (not even a heartbeat) for this long has its jobs dropped
# (`irg-motion serve --client-timeout`).
PEER_TIMEOUT = protocol.CLIENT_TIMEOUT


class Server:
    def __init__(self, model: Any, endpoint: str = protocol.DEFAULT_ENDPOINT, *, curve: CurveServer | None = None,
                 client_timeout: float = PEER_TIMEOUT, fit_body: FitBody | None = None, max_batch: int = 1,
                 engine: Callable[[], PhaseEngine] | None = None):
        if not client_timeout > protocol.HEARTBEAT_INTERVAL:
            raise ValueError(f"the client timeout must be more than the {protocol.HEARTBEAT_INTERVAL:g} s heartbeat "
                             f"interval, got {client_timeout:g} s")
        self.model = model
        self.endpoint = endpoint
        self.client_timeout = float(client_timeout)
        self._curve = curve
        self._outbox: queue.SimpleQueue[tuple[bytes, list]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._seen: dict[bytes, float] = {}
        self.worker = Worker(model, self._emit, fit_body, max_batch=max_batch, engine=engine)
        self.capabilities = CAPABILITIES + (["smpl_params"] if fit_body is not None else [])
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        protocol.configure_socket(self._sock, protocol.MAX_REQUEST_FRAME_BYTES)
        if curve is not None:
            curve.apply(self._ctx, self._sock)
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError:
            self._close()
            raise

    def _emit(self, peer: bytes, frames: list) -> None:
        """Called from any thread: queue a message for `peer` and wake the socket thread."""
        self._outbox.put((peer, frames))
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already; one is enough

    def _flush(self) -> None:
        while True:
            try:
                peer, frames = self._outbox.get_nowait()
            except queue.Empty:
                return
            self._send(peer, frames)

    def _send(self, peer: bytes, frames: list) -> None:
        try:
            self._sock.send_multipart([peer, *frames], flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            log.warning("client %s is not reading; dropped a message", peer.hex())

    def serve(self, stop: threading.Event) -> None:
        """Serve until `stop` is set, then cancel every job and close the sockets."""
        self.worker.start()
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._wake_r.fileno(), zmq.POLLIN)
        last_sweep = time.monotonic()
        log.info("serving %s on %s (%s)", self.model.model_id, self.endpoint, self.model.device)
        try:
            while not stop.is_set():
                events = dict(poller.poll(250))
                if self._wake_r.fileno() in events:
                    self._drain_wakeups()
                self._flush()
                if self._sock in events:
                    for _ in range(100):  # bounded, so worker output is never starved by a flood of requests
                        if not self._sock.poll(0, zmq.POLLIN):
                            break
                        self._handle(*self._recv())
                        self._flush()
                if time.monotonic() - last_sweep > min(1.0, self.client_timeout / 4):
                    last_sweep = time.monotonic()
                    self._drop_silent_peers()
        finally:
            log.info("shutting down: %d live job(s) cancelled", self.worker.live_jobs())
            self.worker.stop()
            self._flush()
            self._close(linger_ms=1000)  # long enough to deliver the goodbyes just flushed

    def _close(self, linger_ms: int = 0) -> None:
        self._sock.close(linger=linger_ms)
        if self._curve is not None:
            self._curve.stop()
        self._ctx.term()
        self._wake_r.close()
        self._wake_w.close()

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _recv(self) -> tuple[bytes, list]:
        """One request as (peer, frames); frames past the protocol's limit are read and discarded."""
        peer = self._sock.recv()
        frames: list = []
        more = self._sock.getsockopt(zmq.RCVMORE)
        while more:
            frame = self._sock.recv(copy=False)
            if len(frames) <= protocol.MAX_FRAMES:  # keep one extra so decode reports too_many_frames
                frames.append(frame)
            more = frame.more
        return peer, frames

    def _drop_silent_peers(self) -> None:
        cutoff = time.monotonic() - self.client_timeout
        for peer in [p for p, t in self._seen.items() if t < cutoff]:
            del self._seen[peer]
            dropped = self.worker.drop_peer(peer)
            if dropped:
                log.info("client %s silent for %g s: dropped %d job(s)", peer.hex(), self.client_timeout, dropped)

    def _handle(self, peer: bytes, frames: list) -> None:
        self._seen[peer] = time.monotonic()
        job = None
        try:
            msg = protocol.decode(frames)
            job = msg.job
            self._dispatch(peer, msg)
        except (ProtocolError, JobError) as exc:
            log.info("rejected a request from %s: %s %s", peer.hex(), exc.code, exc)
            self._send(peer, protocol.error(exc.code, str(exc), getattr(exc, "job", None) or job))
        except Exception as exc:  # never let one request take the service down; the client gets no traceback
            log.exception("request from %s failed", peer.hex())
            self._send(peer, protocol.error("internal", f"the server failed on this request ({type(exc).__name__}); "
                                                        "see the server log", job))

    def _dispatch(self, peer: bytes, msg: protocol.Message) -> None:
        m = self.model
        if msg.type == "heartbeat":
            self._send(peer, protocol.encode("heartbeat"))
        elif msg.type == "ping":
            self._send(peer, protocol.encode("pong", t=msg.get("t", 0.0), model_id=m.model_id, device=m.device))
        elif msg.type == "hello":
            self._send(peer, protocol.encode(
                "welcome", model_id=m.model_id, device=m.device, fps=float(m.fps), joints=protocol.JOINT_SET,
                units="m", up="y", capabilities=self.capabilities,
                limits={"min_seconds": m.min_seconds, "max_seconds": m.max_seconds,
                        "max_prompt_chars": m.max_prompt_chars, "max_rounds": m.max_rounds_limit,
                        "heartbeat_interval": protocol.HEARTBEAT_INTERVAL,
                        "heartbeat_timeout": protocol.HEARTBEAT_TIMEOUT, "client_timeout": self.client_timeout}))
        elif msg.type == "generate":
            self.worker.submit(peer, msg.job, msg.fields)
        elif msg.type == "refine":
            self.worker.refine(peer, msg.job, msg["round"], msg.get("instruction"))
        elif msg.type == "accept":
            self.worker.accept(peer, msg.job)
        elif msg.type == "cancel":
            self.worker.cancel(peer, msg.job)
