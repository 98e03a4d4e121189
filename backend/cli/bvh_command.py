"""`irg-motion import-bvh`: a BVH file (CMU, Mixamo, SMPL or Biovision-style skeleton) -> SMPL-22 motion .npz."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from backend.motion.bvh import UNITS, import_bvh
from backend.motion.io import DEFAULT_FPS, Motion, save_motion


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-bvh", help="BVH mocap file -> SMPL-22 joints .npz (metres, Y up, facing +Z)")
    p.add_argument("bvh", type=Path, help="BVH file with a CMU, Mixamo, SMPL or Biovision-style skeleton")
    p.add_argument("--out", type=Path, help="motion file to write (.npz); default: the BVH path with .npz")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frame rate to resample to (default {DEFAULT_FPS:g})")
    p.add_argument(
        "--unit", choices=["auto", *UNITS], default="auto",
        help="length unit of the file; auto picks the one that gives a human-sized skeleton (docs/bvh.md)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = args.out or args.bvh.with_suffix(".npz")
    console = Console()
    with console.status(f"importing {args.bvh}"):
        result = import_bvh(args.bvh, fps=args.fps, unit=args.unit)
        save_motion(out, Motion(joints=result.joints, fps=result.fps))
    frames = result.joints.shape[0]
    console.print(
        f"wrote {out}: {frames} frames at {result.fps:g} fps ({frames / result.fps:.1f} s) from a "
        f"{result.convention}-style skeleton at {result.source_fps:.4g} fps, unit {result.unit}"
    )
    return 0
