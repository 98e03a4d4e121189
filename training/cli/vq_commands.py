"""`irg-motion train-vq` and `irg-motion eval-vq`: train the motion VQ-VAE tokenizer on a HumanML3D-layout
folder, and measure a tokenizer's reconstruction error on a split of one."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-vq", help="train the motion VQ-VAE tokenizer",
        description="Train the motion VQ-VAE on a HumanML3D-layout folder and write a tokenizer folder "
                    "(vqvae.safetensors, vqvae_config.json, mean.npy, std.npy, metrics.json).")
    p.add_argument("--data", required=True, help="dataset folder (new_joint_vecs/, Mean.npy, Std.npy, train.txt, test.txt)")
    p.add_argument("--config", required=True, help="training config JSON, e.g. training/configs/vq_builtin.json")
    p.add_argument("--out", required=True, help="output folder for the checkpoint and the trained tokenizer")
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="save a checkpoint and stop after this many minutes (continue later with --resume)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N for a single process (default: cuda when available, else cpu); "
                        "under `accelerate launch` the launcher places the processes")
    p.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "eval-vq", help="reconstruction error of a motion tokenizer on a dataset split",
        description="Encode and decode every clip of a split; print the mean joint position error in metres "
                    "(global, and with the root trajectory removed) and the codebook usage.")
    p.add_argument("--tokenizer", required=True, help="tokenizer folder, e.g. backend/models/builtin")
    p.add_argument("--data", required=True, help="HumanML3D-layout dataset folder")
    p.add_argument("--split", default="test", help="split file name without .txt (default: test)")
    p.add_argument("--clips", type=int, default=0, help="evaluate only the first N clips of the split (0: all)")
    p.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from training.distributed import leave_process_group
    from training.vq.train_vq import TrainConfig, train  # torch loads only when the command runs

    train(args.data, TrainConfig.from_json(args.config), args.out, resume=args.resume, max_minutes=args.max_minutes,
          device=args.device)
    leave_process_group()
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from backend.models.motion_tokenizer import MotionTokenizer
    from training.vq.train_vq import evaluate, load_split

    tokenizer = MotionTokenizer.load(args.tokenizer)
    clips = load_split(Path(args.data), args.split, tokenizer.config.downsample)
    metrics = evaluate(tokenizer, clips[: args.clips] if args.clips else clips)
    table = Table(title=f"{args.tokenizer} on {args.data} ({args.split})")
    for name in ("clips", "joint error (cm)", "pose error (cm)", "codes used", "perplexity"):
        table.add_column(name, justify="right")
    table.add_row(str(metrics["clips"]), f"{metrics['joint_error_m'] * 100:.2f}", f"{metrics['pose_error_m'] * 100:.2f}",
                  f"{metrics['used_codes']}/{tokenizer.config.nb_code}", f"{metrics['perplexity']:.1f}")
    Console().print(table)
    return 0
