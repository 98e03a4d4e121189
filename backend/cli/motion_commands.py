"""`irg-motion features`, `irg-motion joints` and `irg-motion check`: motion file conversions and a self-check."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from backend.motion.features import extract_features, recover_from_ric
from backend.motion.io import DEFAULT_FPS, Motion, load_motion, save_motion
from backend.motion.spec import T2M
from retarget import rotations, skeleton


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="joints .npz -> HumanML3D 263-d features .npy")
    p.add_argument("motion", type=Path, help="motion file (.npz with joints and fps)")
    p.add_argument("--out", type=Path, required=True, help="features file to write (.npy)")
    p.set_defaults(func=run_features)

    p = sub.add_parser("joints", help="HumanML3D features .npy -> joints .npz (recover_from_ric)")
    p.add_argument("features", type=Path, help="features file (.npy, frames x 263)")
    p.add_argument("--out", type=Path, required=True, help="motion file to write (.npz)")
    p.add_argument("--fps", type=float, default=T2M.fps, help="frame rate of the features (HumanML3D: 20)")
    p.set_defaults(func=run_joints)

    p = sub.add_parser("check", help="quick self-check of the skeleton and the motion features")
    p.set_defaults(func=run_check)


def run_features(args: argparse.Namespace) -> int:
    motion = load_motion(args.motion)
    if abs(motion.fps - T2M.fps) > 1e-3:
        raise ValueError(f"{args.motion} is at {motion.fps:g} fps; HumanML3D features are defined at {T2M.fps:g} fps")
    if args.out.suffix != ".npy":
        raise ValueError(f"features are written as .npy, got {args.out.name!r}")
    extracted = extract_features(motion.joints)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, extracted.features)
    Console().print(f"wrote {args.out}: {extracted.features.shape[0]} frames x {extracted.features.shape[1]} features")
    return 0


def run_joints(args: argparse.Namespace) -> int:
    if not args.features.is_file():
        raise FileNotFoundError(f"{args.features}: no such file")
    try:
        features = np.load(args.features, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{args.features}: not a numeric .npy array ({exc})") from None
    if features.ndim != 2:
        raise ValueError(f"{args.features}: features must be a 2-D array (frames, 263), got shape {features.shape}")
    joints = recover_from_ric(features)
    save_motion(args.out, Motion(joints=joints, fps=args.fps))
    Console().print(f"wrote {args.out}: {joints.shape[0]} frames of {joints.shape[1]} joints")
    return 0


def synthetic_motion(frames: int = 120, seed: int = 0) -> np.ndarray:
    """A smooth random FK motion (joints (T,22,3)) for self-checks and benchmarks."""
    rng = np.random.default_rng(seed)
    axis_angles = np.cumsum(rng.normal(0.0, 0.02, (frames, skeleton.NUM_JOINTS, 3)), axis=0)
    local = rotations.axis_angle_to_matrix(axis_angles)
    t = np.linspace(0.0, frames / DEFAULT_FPS, frames)
    root = np.stack([0.5 * t, np.full(frames, 0.95), 0.3 * np.sin(t)], axis=-1)
    return skeleton.forward_kinematics(local, root)[0].astype(np.float32)


def run_check(args: argparse.Namespace) -> int:
    table = Table(title="irg-motion self-check")
    for col in ("check", "result", "limit", "ok"):
        table.add_column(col)
    failures = 0

    def row(name: str, value: float, limit: float, unit: str) -> None:
        nonlocal failures
        ok = value <= limit
        failures += not ok
        table.add_row(name, f"{value:.3g} {unit}", f"<= {limit:g} {unit}", "[green]yes" if ok else "[red]NO")

    identity = np.broadcast_to(np.eye(3), (1, skeleton.NUM_JOINTS, 3, 3))
    rest, _ = skeleton.forward_kinematics(identity, skeleton.REST_JOINTS[None, 0])
    row("FK of the rest pose vs rest joints", float(np.abs(rest[0] - skeleton.REST_JOINTS).max()), 1e-9, "m")

    big = np.broadcast_to(np.eye(3), (10_000, skeleton.NUM_JOINTS, 3, 3))
    start = time.perf_counter()
    skeleton.forward_kinematics(big, np.zeros((10_000, 3)))
    row("FK of 10,000 frames", time.perf_counter() - start, 1.0, "s")

    joints = synthetic_motion()
    extracted = extract_features(joints)
    error = np.abs(recover_from_ric(extracted.features) - extracted.positions[:-1]).max()
    row("joints -> features -> joints", float(error), 1e-4, "m")
    row("feature width - 263", float(extracted.features.shape[1] - T2M.dim), 0, "")
    Console().print(table)
    return 1 if failures else 0
