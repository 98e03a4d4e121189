"""`irg-motion serve`, `irg-motion ping` and `irg-motion keys`: run the backend, check one, make CurveZMQ keys."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from pathlib import Path

from rich.console import Console

from backend import protocol, security

ENGINES = ("transformers", "vllm")
MAX_BATCH = 64   # the server's job limit (backend/worker.py MAX_JOBS)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model to the Blender add-on over ZeroMQ")
    p.add_argument("--model", default="builtin", help="'builtin' or a model folder (default: builtin)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--bind", default=protocol.DEFAULT_ENDPOINT, help=f"endpoint (default: {protocol.DEFAULT_ENDPOINT})")
    p.add_argument("--server-key", type=Path, help="the server's NAME.key_secret (from `irg-motion keys`)")
    p.add_argument("--client-keys", type=Path, help="folder of the public NAME.key files of allowed clients")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without keys (trusted networks only)")
    p.add_argument("--smpl-dir", type=Path, help="folder with the SMPL model files: each round also carries fitted "
                   "SMPL parameters (a few seconds of CPU per round)")
    p.add_argument("--client-timeout", type=float, default=protocol.CLIENT_TIMEOUT, metavar="SECONDS",
                   help="drop the jobs of a client that has sent nothing, not even a heartbeat, for this long "
                        f"(default: {protocol.CLIENT_TIMEOUT:g})")
    p.add_argument("--max-batch", type=int, default=1, metavar="N",
                   help="generate up to N auto-mode jobs that wait at the same time as one batch "
                        "(default: 1, each job alone; try 8 on a GPU)")
    p.add_argument("--engine", choices=ENGINES, default="transformers",
                   help="what runs auto-mode jobs: transformers (default) or vllm (CUDA, `pip install vllm`); "
                        "step-mode jobs always run on transformers")
    p.set_defaults(func=run_serve)

    p = sub.add_parser("ping", help="ask a running server for its model and device, and measure the latency")
    p.add_argument("endpoint", nargs="?", default=protocol.DEFAULT_ENDPOINT, help="tcp://HOST:PORT")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer (default: 3)")
    p.add_argument("--count", type=int, default=5, help="pings to send; the median latency is printed (default: 5)")
    p.add_argument("--server-key", type=Path, help="the server's public NAME.key (with --client-key)")
    p.add_argument("--client-key", type=Path, help="this client's NAME.key_secret (with --server-key)")
    p.set_defaults(func=run_ping)

    p = sub.add_parser("keys", help="make a CurveZMQ key pair (NAME.key public, NAME.key_secret private)")
    p.add_argument("directory", type=Path, help="folder to write the pair into")
    p.add_argument("--name", default="server", help="file name of the pair (default: server)")
    p.set_defaults(func=run_keys)


class _JsonLines(logging.Formatter):
    """One JSON object per line, with the `job` record's fields flattened in, so job lines can be grepped and parsed."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": self.formatTime(record), "level": record.levelname, "event": record.getMessage()}
        line.update(getattr(record, "job", {}))
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)


def run_serve(args: argparse.Namespace) -> int:
    if not args.client_timeout > protocol.HEARTBEAT_INTERVAL:  # also refuses nan
        raise ValueError(f"--client-timeout must be more than the {protocol.HEARTBEAT_INTERVAL:g} s heartbeat "
                         f"interval, got {args.client_timeout:g}")
    if not 1 <= args.max_batch <= MAX_BATCH:
        raise ValueError(f"--max-batch must be from 1 to {MAX_BATCH}, got {args.max_batch}")
    if args.engine == "vllm":
        from backend.models.vllm_engine import require_vllm

        require_vllm()  # before minutes of model loading
    secured = args.server_key is not None or args.client_keys is not None
    if secured and (args.server_key is None or args.client_keys is None):
        raise security.SecurityError("--server-key and --client-keys go together")
    security.check_bind(args.bind, secured, args.insecure)
    curve = security.CurveServer(args.server_key, args.client_keys) if secured else None
    from backend.models.loader import load_model  # torch is imported only when a model is served
    from backend.server import Server

    handler = logging.StreamHandler()
    handler.setFormatter(_JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)

    fit_body = _body_fitter(args.smpl_dir) if args.smpl_dir else None  # fails early on missing SMPL files
    model = load_model(args.model, device=args.device)
    engine = None
    if args.engine == "vllm":
        from backend.models.vllm_engine import VllmEngine, vllm_model_dir

        engine = VllmEngine(vllm_model_dir(model, args.model))
    try:
        server = Server(model, args.bind, curve=curve, client_timeout=args.client_timeout, fit_body=fit_body,
                        max_batch=args.max_batch, engine=None if engine is None else lambda: engine)
    except Exception as exc:  # zmq.ZMQError: address in use, bad endpoint
        raise ValueError(f"cannot bind {args.bind}: {exc}") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.serve(stop)
    return 0


def run_ping(args: argparse.Namespace) -> int:
    keys_given = (args.server_key is not None, args.client_key is not None)
    if any(keys_given) and not all(keys_given):
        raise security.SecurityError("--server-key and --client-key go together")
    curve = security.client_keys(args.client_key, args.server_key) if all(keys_given) else None
    latencies, pong = [], None
    with protocol.Client(args.endpoint, curve=curve) as client:
        for _ in range(max(1, args.count)):
            sent = client.ping()
            deadline = time.monotonic() + args.timeout
            while (msg := client.recv(max(0.0, deadline - time.monotonic()))) is not None:
                if msg.type == "pong" and msg.get("t") == sent:
                    latencies.append(time.perf_counter() - sent)
                    pong = msg
                    break
                if msg.type == "error":
                    raise ValueError(f"{args.endpoint}: {msg['code']}: {msg['message']}")
            else:
                raise ValueError(f"no answer from {args.endpoint} within {args.timeout:g} s "
                                 "(is `irg-motion serve` running there, with matching keys?)")
    latencies.sort()
    median_ms = latencies[len(latencies) // 2] * 1000
    Console().print(f"{args.endpoint}: model {pong['model_id']} on {pong['device']}, "
                    f"latency {median_ms:.2f} ms (median of {len(latencies)})", highlight=False)
    return 0


def run_keys(args: argparse.Namespace) -> int:
    public, secret = security.make_keypair(args.directory, args.name)
    Console().print(f"wrote {public} (public: copy it to the other side)\nwrote {secret} (secret: keep it here)",
                    highlight=False)
    return 0


def _body_fitter(smpl_dir: Path):
    """joints -> the round's `smpl_*` arrays, fitted to the user's SMPL model."""
    from backend.body.body_model import load_body
    from backend.body.fit import fit_smpl

    body = load_body(smpl_dir)

    def fit(joints):
        params, _ = fit_smpl(body, joints)
        return {f"smpl_{name}": value for name, value in params.as_arrays().items()}

    return fit
