"""Encode/decode time of the motion tokenizer for a 200-frame motion, median of several runs, as a table.

    python benchmarks/vq_speed.py                        # the shipped built-in tokenizer, on the CPU
    python benchmarks/vq_speed.py --release --device cuda  # also a release-size (width 512) VQ-VAE
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from backend.models.motion_tokenizer import MotionTokenizer
from backend.models.vqvae import MotionVQVAE, VQVAEConfig
from backend.motion.features import extract_features
from backend.motion.normalize import Normalizer
from retarget.skeleton import REST_JOINTS

BUILTIN = Path(__file__).resolve().parents[1] / "backend" / "models" / "builtin"


def walking_joints(frames: int) -> np.ndarray:
    """The rest skeleton moving forward with swinging arms: enough for timing."""
    t = np.arange(frames)[:, None] / 20.0
    joints = np.repeat(REST_JOINTS[None], frames, 0) + np.array([0.0, 1.2, 0.0])
    joints[:, :, 2] += 1.2 * t
    joints[:, 16:, 2] += 0.1 * np.sin(2 * np.pi * t)
    return joints.astype(np.float32)


def median_ms(fn, runs: int) -> float:
    for _ in range(3):  # warm-up
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default=str(BUILTIN), help="tokenizer folder (default: the built-in one)")
    parser.add_argument("--release", action="store_true", help="also time a randomly initialised release-size VQ-VAE")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    joints = walking_joints(args.frames + 1)  # T joint frames give T-1 feature frames
    features = extract_features(joints).features
    tokenizers = {"built-in": MotionTokenizer.load(args.tokenizer, device=args.device)}
    if args.release:
        model = MotionVQVAE(VQVAEConfig())
        model.vqvae.quantizer.codebook.normal_()
        tokenizers["release size"] = MotionTokenizer(model, Normalizer(features.mean(0), features.std(0) + 1e-3)).to(args.device)

    table = Table(title=f"VQ-VAE speed, {len(features)} frames, {args.device}, {args.threads} threads, median of {args.runs}")
    for name in ("model", "params", "encode ms", "decode ms", "joints->codes ms", "codes->joints ms"):
        table.add_column(name, justify="right")
    for name, tok in tokenizers.items():
        x = torch.from_numpy(tok.normalizer.normalize(features)).to(args.device)[None]
        codes = tok.model.encode(x)
        table.add_row(
            name, f"{sum(p.numel() for p in tok.model.parameters()) / 1e6:.2f} M",
            f"{median_ms(lambda: tok.model.encode(x), args.runs):.2f}",
            f"{median_ms(lambda: tok.model.decode(codes), args.runs):.2f}",
            f"{median_ms(lambda: tok.codes_from_joints(joints), args.runs):.2f}",
            f"{median_ms(lambda: tok.joints_from_codes(codes[0].tolist()), args.runs):.2f}",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
