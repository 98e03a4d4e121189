"""`irg-motion corpus` (write the procedural corpus) and `irg-motion corpus-stats` (its acceptance figures)."""
from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table


def run_corpus(args) -> int:
    from training.corpus.writer import write_corpus

    out = write_corpus(args.out, args.clips, args.seed, args.workers)
    Console().print(f"wrote {args.clips} clips to {out}")
    return 0


def run_stats(args) -> int:
    from training.corpus.stats import corpus_stats

    s = corpus_stats(args.dir)
    table = Table(title=f"corpus {args.dir}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target")
    rows = [
        ("clips", f"{s.clips}", ""),
        ("bone length drift", f"{s.max_bone_drift_m * 1000:.4f} mm", "< 1 mm"),
        ("feet below the floor", f"{s.max_floor_penetration_m * 100:.3f} cm", "< 1 cm"),
        ("foot skating (locomotion stance frames)", f"{s.locomotion_skating_ratio * 100:.2f} %", "< 2 %"),
        ("backward knee frames", f"{s.backward_knee_frames}", "0"),
        ("backward elbow frames", f"{s.backward_elbow_frames}", "0"),
        ("largest joint step per frame", f"{s.max_joint_step_m:.3f} m", "< 0.3 m"),
        ("primitives never used", ", ".join(s.missing_primitives) or "none", "none"),
        ("modifiers never used", ", ".join(s.missing_modifiers) or "none", "none"),
        ("distinct captions per clip", f"{s.mean_distinct_captions:.2f}", ">= 3"),
        ("features -> joints round trip", f"{s.max_roundtrip_error_m:.2e} m", "< 1e-4 m"),
    ]
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("corpus", help="write the procedural motion corpus (HumanML3D layout)")
    p.add_argument("--out", required=True, help="new folder for the corpus")
    p.add_argument("--clips", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.set_defaults(func=run_corpus)
    p = subparsers.add_parser("corpus-stats", help="print the acceptance figures of a corpus folder")
    p.add_argument("dir")
    p.set_defaults(func=run_stats)
