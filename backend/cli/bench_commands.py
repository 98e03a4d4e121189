"""`irg-motion bench`: how fast the loop runs on a model: time to the first round, time per further round and
generated tokens per second (median of --runs runs after one warm-up), plus the model's raw decoding speed.

    irg-motion bench --model builtin --rounds 3 --seconds 6
    irg-motion bench --model random-2b --device cuda            # Gemma-2-2B shape, random weights, bf16
    irg-motion bench --model random-2b --layers 1 --hidden 64   # a CPU smoke run of the same code path

Every run forces exactly --rounds rounds when the model allows it: a round judged final is refined again with an
instruction. A round with an error ends the run, so "rounds" says how many ran. random-2b's analysis and
assessments are forced to well-formed text of the release's lengths (backend/cli/scripted_trace.py), so its runs
have every round and the release's token counts. `--compile` wraps the LM's forward in torch.compile; `--static-cache` makes the raw-decoding
measurement use a static KV cache (both for CUDA; the loop itself keeps its session-long dynamic cache).

`--batch N` adds the throughput of N concurrent auto-mode prompts (greedy, up to --rounds rounds each, the model
decides when it is done): one after another in `LoopSession`s, then as one batch (backend/batch_loop.py).

    irg-motion bench --model builtin --batch 4 --seconds 4 --decode-tokens 0
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from backend.batch_loop import TraceRow, TransformersBatch, drive
from backend.loop import LoopOptions, LoopSession
from backend.models.loader import load_model, resolve_device

PROMPT = "a person jumps forward two times."
RETRY_INSTRUCTION = "make the motion match the prompt."
# The --batch prompts (cycled): different lengths, words the built-in model knows.
BATCH_PROMPTS = ("a person jumps forward two times.", "a person walks in a circle.",
                 "a person waves with the right hand.", "a man runs forward then turns around and walks back.",
                 "a person sits down.", "a person kicks with the left leg.", "a person walks backward slowly.",
                 "a person throws a ball with the right hand.")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time the loop on a model: first round, per round, tokens per second")
    p.add_argument("--model", default="builtin", help="'builtin', a model or release folder, or 'random-2b'")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--rounds", type=int, default=3, help="rounds per run (default 3)")
    p.add_argument("--seconds", type=float, default=6.0, help="motion length per round (default 6)")
    p.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up; medians are shown (default 3)")
    p.add_argument("--prompt", default=PROMPT)
    p.add_argument("--decode-tokens", type=int, default=64, help="tokens of the raw decoding measurement (0: skip)")
    p.add_argument("--layers", type=int, default=None, help="random-2b only: fewer layers (CPU smoke runs)")
    p.add_argument("--hidden", type=int, default=None, help="random-2b only: a narrower model (CPU smoke runs)")
    p.add_argument("--attn", default=None, help="attention of release/random models (default: flash_attention_2 "
                                                "on CUDA when installed, else eager)")
    p.add_argument("--compile", action="store_true", help="torch.compile the LM's forward (CUDA)")
    p.add_argument("--static-cache", action="store_true", help="raw decoding with a static KV cache (CUDA)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--batch", type=int, default=0, metavar="N",
                   help="also time N concurrent auto-mode prompts, one after another and as one batch")
    p.set_defaults(func=run)


def load(args: argparse.Namespace):
    if args.model == "random-2b":
        from backend.cli.scripted_trace import SCRIPT_WORDS, script_text_phases
        from backend.models.release import random_release_model

        device = resolve_device(args.device)
        if device == "cpu":
            torch.set_num_threads(args.threads)
        model = random_release_model(device, layers=args.layers, hidden=args.hidden, attn=args.attn, words=SCRIPT_WORDS)
        script_text_phases(model)   # release-length analysis and assessments instead of random garbage
        return model
    if args.layers or args.hidden:
        raise ValueError("--layers and --hidden apply to --model random-2b only")
    return load_model(args.model, args.device, cpu_threads=args.threads, attn=args.attn)


def sync(model) -> None:
    if str(model.device).startswith("cuda"):
        torch.cuda.synchronize()


def run_loop(model, prompt: str, rounds: int, seconds: float) -> dict:
    """One loop run: seconds to the first round, seconds of each later round, tokens generated, total."""
    options = LoopOptions(seconds=seconds, max_rounds=rounds, mode="step")
    t0 = time.perf_counter()
    session = LoopSession(model, prompt, options)
    marks, errors = [], 0
    while True:
        last = session.history[-1] if session.history else None
        retry = last is not None and last.final and not last.error and len(session.history) < rounds
        r = session.next_round(RETRY_INSTRUCTION if retry else None)
        if r is None:
            break
        sync(model)
        marks.append(time.perf_counter())
        errors += bool(r.error)
    total = (marks[-1] if marks else time.perf_counter()) - t0
    return {"first": marks[0] - t0 if marks else float("nan"),
            "per_round": [b - a for a, b in zip(marks, marks[1:])], "rounds": len(marks), "errors": errors,
            "tokens": session._tokens, "total": total}


def raw_decode(model, tokens: int, static: bool) -> tuple[float, float]:
    """(prefill seconds of the trace prompt, decode tokens/s) of plain greedy generation, no loop around it."""
    from backend import prompts

    ids = torch.tensor([model.encode(prompts.trace_context(PROMPT), bos=True)], device=model.lm.device)
    extra = dict(cache_implementation="static") if static else {}

    def timed(new: int) -> float:
        t0 = time.perf_counter()
        model.lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                          do_sample=False, pad_token_id=0, **extra)
        sync(model)
        return time.perf_counter() - t0

    with torch.inference_mode():
        timed(1), timed(tokens)   # warm-up: compilation, cache allocation
        prefill = timed(1)
        decode = timed(tokens) - prefill
    return prefill, (tokens - 1) / decode if decode > 0 else float("nan")


def run_concurrent(model, n: int, rounds: int, seconds: float, batched: bool) -> dict:
    """N auto-mode prompts, sequentially or as one batch: seconds, rounds, generated tokens, the rounds' codes."""
    options = LoopOptions(seconds=seconds, max_rounds=rounds)
    t0 = time.perf_counter()
    if batched:
        rows = {i: TraceRow(model, BATCH_PROMPTS[i % len(BATCH_PROMPTS)], options) for i in range(n)}
        for _ in drive(rows, TransformersBatch(model)):
            pass
        sessions = list(rows.values())
    else:
        sessions = [LoopSession(model, BATCH_PROMPTS[i % len(BATCH_PROMPTS)], options) for i in range(n)]
        for session in sessions:
            for _ in session.rounds():
                pass
    sync(model)
    return {"total": time.perf_counter() - t0, "rounds": sum(len(s.history) for s in sessions),
            "tokens": sum(s._tokens for s in sessions), "codes": [[r.codes for r in s.history] for s in sessions]}


def concurrent_table(model, args: argparse.Namespace) -> Table:
    run_concurrent(model, args.batch, args.rounds, args.seconds, batched=True)   # warm-up
    sequential = [run_concurrent(model, args.batch, args.rounds, args.seconds, batched=False) for _ in range(args.runs)]
    batched = [run_concurrent(model, args.batch, args.rounds, args.seconds, batched=True) for _ in range(args.runs)]
    table = Table(title=f"{args.batch} concurrent auto-mode prompts (greedy, up to {args.rounds} rounds x "
                        f"{args.seconds:g} s): one after another vs one batch, median of {args.runs}")
    for column in ("measure", "sequential", "batched", "batched / sequential"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    for name, value, fmt in (("whole run (s)", lambda r: r["total"], "{:.3f}"),
                             ("rounds", lambda r: r["rounds"], "{:.0f}"),
                             ("rounds per second", lambda r: r["rounds"] / r["total"], "{:.2f}"),
                             ("generated tokens", lambda r: r["tokens"], "{:.0f}"),
                             ("tokens per second", lambda r: r["tokens"] / r["total"], "{:.1f}")):
        a, b = median([value(r) for r in sequential]), median([value(r) for r in batched])
        table.add_row(name, fmt.format(a), fmt.format(b), f"{b / a:.2f}" if a else "-")
    same = all(r["codes"] == sequential[0]["codes"] for r in batched)
    table.add_row("batched rounds equal the sequential ones", "", "yes" if same else "NO", "")
    return table


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(args: argparse.Namespace) -> int:
    if args.runs < 1 or args.rounds < 1 or args.batch < 0:
        raise ValueError("--runs and --rounds must be at least 1, --batch at least 0")
    console = Console()
    t0 = time.perf_counter()
    model = load(args)
    load_s = time.perf_counter() - t0
    if args.compile:
        model.lm.forward = torch.compile(model.lm.forward, dynamic=True)
    dtype = next(model.lm.parameters()).dtype
    attn = model.lm.config._attn_implementation
    run_loop(model, args.prompt, args.rounds, args.seconds)   # warm-up (and compilation)
    runs = [run_loop(model, args.prompt, args.rounds, args.seconds) for _ in range(args.runs)]
    table = Table(title=f"{model.model_id} on {model.device} ({str(dtype).removeprefix('torch.')}, {attn} attention"
                        f"{', compiled' if args.compile else ''}): {args.rounds} rounds x {args.seconds:g} s, "
                        f"median of {args.runs} (load {load_s:.1f} s)")
    for column in ("measure", "median", "min", "max"):
        table.add_column(column, justify="right" if column != "measure" else "left")

    def row(name: str, values: list[float], fmt: str) -> None:
        if values:
            table.add_row(name, fmt.format(median(values)), fmt.format(min(values)), fmt.format(max(values)))
        else:
            table.add_row(name, "-", "-", "-")

    row("time to first round (s)", [r["first"] for r in runs], "{:.3f}")
    row("time per further round (s)", [median(r["per_round"]) for r in runs if r["per_round"]], "{:.3f}")
    row("whole run (s)", [r["total"] for r in runs], "{:.3f}")
    row("rounds done", [r["rounds"] for r in runs], "{:.0f}")
    row("rounds with an error", [r["errors"] for r in runs], "{:.0f}")
    row("generated tokens", [r["tokens"] for r in runs], "{:.0f}")
    row("loop tokens per second", [r["tokens"] / r["total"] for r in runs], "{:.1f}")
    if args.decode_tokens > 1:
        raw = [raw_decode(model, args.decode_tokens, args.static_cache) for _ in range(args.runs)]
        row("prompt prefill (s)", [p for p, _ in raw], "{:.3f}")
        row(f"raw decode tokens per second ({args.decode_tokens} tokens"
            f"{', static cache' if args.static_cache else ''})", [t for _, t in raw], "{:.1f}")
    wide = Console(width=max(console.width, 120))
    wide.print(table)
    if args.batch:
        wide.print(concurrent_table(model, args))
    return 0
