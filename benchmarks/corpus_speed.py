"""Corpus generation speed: median of several runs, extrapolated to 20,000 clips (target: under 10 minutes on 2 cores).

    python benchmarks/corpus_speed.py --clips 400 --runs 3 --workers 2
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from training.corpus.writer import write_corpus


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    times = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_corpus(Path(tmp) / "c", args.clips, seed=run, workers=args.workers)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    table = Table(title="procedural corpus generation")
    for col in ("clips", "workers", "runs", "median s", "clips/s", "20,000 clips (min)"):
        table.add_column(col, justify="right")
    table.add_row(str(args.clips), str(args.workers), str(args.runs), f"{median:.2f}",
                  f"{args.clips / median:.1f}", f"{20000 / (args.clips / median) / 60:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
