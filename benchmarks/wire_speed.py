"""How long one round (200 x 22 x 3 float32 joints) takes on the wire: encode, decode, and a full request ->
round reply over tcp loopback through the same ROUTER/DEALER sockets and protocol code the service uses;
and how many pings per second go through, one at a time and pipelined.

    python benchmarks/wire_speed.py [--frames 200] [--repeats 500] [--pings 5000] [--endpoint tcp://127.0.0.1:5555]

With --endpoint the pings go to a running `irg-motion serve` there instead of the in-process responder.
Target (DESIGN.md): under 5 ms per round on loopback.
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np
import zmq
from rich.console import Console
from rich.table import Table

from backend import protocol


def round_frames(joints: np.ndarray) -> list:
    return protocol.encode("round", "bench", arrays={"joints": joints}, round=0, codes=list(range(joints.shape[0] // 4)),
                           assessment="The motion matches the description.", instruction="", final=True, error="",
                           fps=20.0)


def serve_rounds(sock: zmq.Socket, joints: np.ndarray, stop: threading.Event) -> None:
    """A ROUTER answering like the server's send path: a ping with a pong, any other request with a fresh round."""
    while not stop.is_set():
        if sock.poll(100):
            peer, *frames = sock.recv_multipart(copy=False)
            msg = protocol.decode(frames)
            if msg.type == "heartbeat":  # the client's own keep-alive, not a request
                sock.send_multipart([peer, *protocol.encode("heartbeat")])
            elif msg.type == "ping":
                sock.send_multipart([peer, *protocol.encode("pong", t=msg.get("t", 0.0), model_id="bench",
                                                            device="cpu")])
            else:
                sock.send_multipart([peer, *round_frames(joints)], copy=False)


def pong(client: protocol.Client, timeout: float = 5.0) -> protocol.Message:
    msg = client.recv(timeout=timeout)
    assert msg is not None and msg.type == "pong", f"expected a pong, got {msg}"
    return msg


def pings_per_second(client: protocol.Client, count: int, window: int) -> float:
    """Pings answered per second with up to `window` in flight (1: each waits for its pong)."""
    sent = answered = 0
    start = time.perf_counter()
    while answered < count:
        while sent < count and sent - answered < window:
            client.ping()
            sent += 1
        pong(client)
        answered += 1
    return count / (time.perf_counter() - start)


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--pings", type=int, default=5000, help="pings per rate measurement (default: 5000)")
    parser.add_argument("--endpoint", help="ping a running `irg-motion serve` here instead of the in-process responder")
    args = parser.parse_args()

    joints = np.random.default_rng(0).standard_normal((args.frames, protocol.NUM_JOINTS, 3)).astype(np.float32)
    encoded = [bytes(f) for f in round_frames(joints)]

    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    protocol.configure_socket(router, protocol.MAX_REQUEST_FRAME_BYTES)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()
    thread = threading.Thread(target=serve_rounds, args=(router, joints, stop))
    thread.start()
    client = protocol.Client(f"tcp://127.0.0.1:{port}", context=ctx)

    pinged = protocol.Client(args.endpoint, context=ctx) if args.endpoint else client

    def round_trip() -> None:
        client.refine("bench", 0)  # any request but a ping is answered with a round
        msg = client.recv(timeout=5.0)
        assert msg is not None and msg.arrays["joints"].shape == joints.shape

    def ping_pong() -> None:
        pong(pinged)

    try:
        timed(round_trip, 20)  # connect and warm up
        for _ in range(20):
            pinged.ping()
            pong(pinged, timeout=10.0)
        rows = [
            ("encode (header + array frame)", timed(lambda: round_frames(joints), args.repeats)),
            ("decode + validate", timed(lambda: protocol.decode(encoded, replies=True), args.repeats)),
            ("request -> round over tcp loopback", timed(round_trip, args.repeats)),
            ("ping -> pong over tcp loopback", timed(lambda: (pinged.ping(), ping_pong()), args.repeats)),
        ]
        rates = [(window, pings_per_second(pinged, args.pings, window)) for window in (1, 100)]
    finally:
        stop.set()
        thread.join()
        if pinged is not client:
            pinged.close()
        client.close()
        router.close(linger=0)
        ctx.term()

    table = Table(title=f"One round on the wire: {args.frames} x 22 x 3 float32 "
                        f"({sum(len(f) for f in encoded) / 1024:.1f} KiB), {args.repeats} repeats")
    for column in ("step", "median ms", "p90 ms", "min ms"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for name, times in rows:
        ms = sorted(t * 1000 for t in times)
        table.add_row(name, f"{statistics.median(ms):.3f}", f"{ms[int(0.9 * len(ms))]:.3f}", f"{ms[0]:.3f}")
    Console().print(table)
    print(f"target: request -> round under 5 ms (median); measured {statistics.median(rows[2][1]) * 1000:.3f} ms")
    target = args.endpoint or "the in-process responder"
    for window, rate in rates:
        how = "one at a time" if window == 1 else f"up to {window} in flight"
        print(f"pings per second ({target}, {how}): {rate:,.0f}")


if __name__ == "__main__":
    main()
