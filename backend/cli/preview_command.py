"""`irg-motion preview`: a stick-figure video (.mp4, .gif) or frame strip (.png) of a motion file."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console

from backend.motion.io import DEFAULT_FPS, Motion, load_motion
from backend.motion.preview import FORMATS, write_preview


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preview", help="draw a motion as a stick figure: .mp4, .gif or a .png strip of frames")
    p.add_argument("motion", type=Path, help="motion file (.npz), or a HumanML3D new_joints .npy (20 fps)")
    p.add_argument("--out", type=Path, required=True, help=f"file to write ({', '.join(FORMATS)})")
    p.add_argument("--caption", help="text drawn on top (default: the motion file's text)")
    p.add_argument("--size", type=int, default=480, help="image width and height in pixels (multiple of 16)")
    p.set_defaults(func=run)


def _load(path: Path) -> Motion:
    if path.suffix == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        return Motion(joints=np.load(path, allow_pickle=False), fps=DEFAULT_FPS)
    return load_motion(path)


def run(args: argparse.Namespace) -> int:
    motion = _load(args.motion)
    if args.caption is not None:
        motion.text = args.caption
    out = write_preview(args.out, motion, args.size)
    Console().print(f"wrote {out} ({motion.frames} frames)")
    return 0
