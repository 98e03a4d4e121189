"""Wall time of the interleaved loop end to end (planning, generation, assessment, VQ decoding), median of N runs.

    python benchmarks/loop_speed.py --rounds 3 --seconds 6 --runs 5

Two measurements per prompt: `auto` (the model stops when it is satisfied, so it may use fewer rounds)
and `exactly N` (step mode; a round the model judges final is rejected with an instruction, so every run
has exactly --rounds rounds, the worst case the target is about). Target on 2 CPU cores: under 2 s for
3 rounds of 6 seconds.
"""
from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console
from rich.table import Table

from backend.loop import LoopOptions, LoopSession
from backend.models.loader import load_model

PROMPTS = ("a person waves with the right hand.", "a person jumps forward two times.", "a man walks in a circle.")
RETRY_INSTRUCTION = "make the motion match the prompt."


def run_once(model, prompt: str, rounds: int, seconds: float, exact: bool) -> tuple[float, int]:
    t0 = time.perf_counter()
    session = LoopSession(model, prompt, LoopOptions(seconds=seconds, max_rounds=rounds, mode="step" if exact else "auto"))
    done = 0
    while True:
        retry = exact and session.history and session.history[-1].final and done < rounds
        r = session.next_round(RETRY_INSTRUCTION if retry else None)
        if r is None:
            break
        done += 1
    return time.perf_counter() - t0, done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="builtin")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    t0 = time.perf_counter()
    model = load_model(args.model, args.device)
    load_s = time.perf_counter() - t0
    table = Table(title=f"{model.model_id} on {model.device}: {args.rounds} rounds x {args.seconds:g} s, "
                        f"median of {args.runs} (load {load_s:.2f} s)")
    for column in ("prompt", "mode", "rounds", "median s", "min s", "max s"):
        table.add_column(column)
    for prompt in PROMPTS:
        for exact in (False, True):
            run_once(model, prompt, args.rounds, args.seconds, exact)  # warm-up
            runs = [run_once(model, prompt, args.rounds, args.seconds, exact) for _ in range(args.runs)]
            times = [t for t, _ in runs]
            table.add_row(prompt, f"exactly {args.rounds}" if exact else "auto", str(runs[0][1]),
                          f"{statistics.median(times):.3f}", f"{min(times):.3f}", f"{max(times):.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
