"""`irg-motion train-evaluator` and `irg-motion eval-data`: train the text-motion evaluator, and print the
real-data reference metrics of a data set under an evaluator."""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "evaluator_builtin.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-evaluator", help="train the text-motion evaluator (contrastive text and motion encoders)",
        description="Train the text-motion evaluator on a HumanML3D-layout folder and write an evaluator folder "
                    "(config.json, vocab.json, model.safetensors, history.json) plus a resumable ckpt.pt.")
    p.add_argument("--data", required=True, help="dataset folder (new_joint_vecs/, texts/, Mean.npy, Std.npy, train/val.txt)")
    p.add_argument("--out", required=True, help="output folder for the evaluator and its checkpoint")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="training config JSON (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after the epoch that passes this many minutes (continue later with --resume)")
    p.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "eval-data", help="real-data reference metrics of a data set under an evaluator",
        description="Embed a split's real text-motion pairs with an evaluator and print R-precision top-1/2/3, "
                    "MM-Dist and Diversity (mean and 95%% interval over repeats, one random caption per clip each), "
                    "and the motion quality of the split's joints (foot skating, ground penetration, jitter).")
    p.add_argument("--evaluator", default=None,
                   help="evaluator folder: one written by train-evaluator, or a Guo et al. evaluator folder "
                        "(default: the shipped training/evaluator/builtin)")
    p.add_argument("--data", required=True, help="dataset folder in the HumanML3D layout")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="default: %(default)s")
    p.add_argument("--repeats", type=int, default=20, help="default: %(default)s")
    p.add_argument("--seed", type=int, default=42, help="default: %(default)s")
    p.set_defaults(func=run_eval)

    p = subparsers.add_parser(
        "evaluate", help="does the loop pay for itself? per-round R-precision, MM-Dist, FID, Diversity",
        description="Run the generate/assess/refine loop (auto mode) on held-out prompts (one random caption per "
                    "clip per repeat, each clip's own duration) and score the first, every later and the final "
                    "round with the evaluator: R-precision top-1/2/3 and MM-Dist in chunks of 32, FID against the "
                    "split's real motions, Diversity, as mean and 95%% interval over repeats; plus a histogram of "
                    "rounds used. Writes OUT/loop_eval.json and OUT/loop_eval.png.")
    p.add_argument("--model", default="builtin", help="'builtin' or a model folder (default: %(default)s)")
    p.add_argument("--data", required=True, help="dataset folder in the HumanML3D layout")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="default: %(default)s")
    p.add_argument("--count", type=int, default=256, help="held-out clips, at least 32 (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="caption draws (default: %(default)s)")
    p.add_argument("--max-rounds", type=int, default=3, help="default: %(default)s")
    p.add_argument("--evaluator", default=None, help="evaluator folder (default: the shipped training/evaluator/builtin)")
    p.add_argument("--seed", type=int, default=42, help="clip, caption and sampling seed (default: %(default)s)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0, help="with --sample (default: %(default)s)")
    p.add_argument("--top-p", type=float, default=0.9, help="with --sample (default: %(default)s)")
    p.add_argument("--out", default="runs/loop_eval", help="folder for loop_eval.json and loop_eval.png (default: %(default)s)")
    p.set_defaults(func=run_loop_eval)


def run_loop_eval(args: argparse.Namespace) -> int:
    from training.evaluate_loop import run

    return run(args)


def run_train(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from training.distributed import leave_process_group
    from training.evaluator.train import TrainConfig, train  # torch loads only when the command runs

    out = train(args.data, TrainConfig.from_json(args.config), args.out, resume=args.resume, max_minutes=args.max_minutes)
    if PartialState().is_main_process:   # one line, also when `accelerate launch` runs several processes
        print(f"evaluator written to {out}")
    leave_process_group()
    return 0


def joint_quality(data_dir: Path, names: list[str]) -> dict[str, tuple[float, float]]:
    """Motion-quality metrics of the split's processed joints (new_joints/), mean and 95 % interval over clips."""
    import numpy as np

    from training import metrics

    per_clip = [metrics.motion_quality(np.load(data_dir / "new_joints" / f"{n}.npy")) for n in names
                if (data_dir / "new_joints" / f"{n}.npy").is_file()]
    return metrics.summarize(per_clip) if per_clip else {}


def run_eval(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from training.evaluator import load_evaluator
    from training.evaluator.data import load_items
    from training.evaluator.evaluate import evaluate_real

    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    torch.set_num_threads(2)
    evaluator = load_evaluator(args.evaluator)
    items = load_items(args.data, args.split)
    with Progress(transient=True) as progress:
        task = progress.add_task(f"evaluating {len(items)} {args.split} clips", total=args.repeats)
        summary, _ = evaluate_real(evaluator, items, args.repeats, args.seed, lambda k: progress.advance(task))
    names = sorted({item.name.split(":")[0] for item in items})
    quality = joint_quality(Path(args.data), names)

    table = Table(title=f"{args.data} ({args.split}, {len(items)} clips) under {evaluator.source}, "
                        f"{args.repeats} repeats; ± is the 95% interval")
    table.add_column("metric")
    table.add_column("value", justify="right")
    labels = {"top1": "R-precision top-1", "top2": "R-precision top-2", "top3": "R-precision top-3",
              "mm_dist": "MM-Dist", "diversity": "Diversity", "skating": "foot skating ratio (joints)",
              "penetration": "ground penetration, m (joints)", "jitter": "jitter, m/s³ (joints)"}
    for key, (mean, interval) in {**summary, **quality}.items():
        table.add_row(labels[key], f"{mean:.4f} ± {interval:.4f}")
    Console().print(table)
    return 0
