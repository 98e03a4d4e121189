"""How long one round (200 x 22 x 3 float32 joints) takes on the wire: encode, decode, and a full request ->
round reply over tcp loopback through the same ROUTER/DEALER sockets and protocol code the service uses.

    python benchmarks/wire_speed.py [--frames 200] [--repeats 500]

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
    """A ROUTER that answers every request with one freshly encoded round, like the server's send path."""
    while not stop.is_set():
        if sock.poll(100):
            peer, *frames = sock.recv_multipart(copy=False)
            if protocol.decode(frames).type == "heartbeat":  # the client's own keep-alive, not a request
                sock.send_multipart([peer, *protocol.encode("heartbeat")])
            else:
                sock.send_multipart([peer, *round_frames(joints)], copy=False)


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

    def round_trip() -> None:
        client.ping()
        msg = client.recv(timeout=5.0)
        assert msg is not None and msg.arrays["joints"].shape == joints.shape

    try:
        timed(round_trip, 20)  # connect and warm up
        rows = [
            ("encode (header + array frame)", timed(lambda: round_frames(joints), args.repeats)),
            ("decode + validate", timed(lambda: protocol.decode(encoded, replies=True), args.repeats)),
            ("request -> round over tcp loopback", timed(round_trip, args.repeats)),
        ]
    finally:
        stop.set()
        thread.join()
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


if __name__ == "__main__":
    main()
