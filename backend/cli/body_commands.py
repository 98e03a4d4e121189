"""`irg-motion fit` and `irg-motion mesh`: SMPL parameters and body meshes for a motion, from the user's SMPL files."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from backend.body.body_model import SmplParams, body_vertices, load_body
from backend.body.fit import fit_smpl
from backend.body.mesh_export import write_mesh_sequence
from backend.motion.io import load_motion, save_motion


def _smpl_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smpl-dir", type=Path, required=True, help="folder holding SMPL_NEUTRAL.pkl (licensed; not shipped)")
    p.add_argument("--gender", default="neutral", choices=["neutral", "male", "female"])


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="fit SMPL pose parameters to a motion and store them in the motion file")
    p.add_argument("motion", type=Path)
    p.add_argument("--out", type=Path, required=True, help="motion file to write (.npz, with smpl_* arrays)")
    p.add_argument("--shape", action="store_true", help="fit body shape (betas) too")
    _smpl_args(p)
    p.set_defaults(func=run_fit)

    p = sub.add_parser("mesh", help="write the animated SMPL body as GLB, or OBJ/PLY per frame")
    p.add_argument("motion", type=Path)
    p.add_argument("--out", type=Path, required=True, help="body.glb, or body.obj / body.ply (one file per frame)")
    p.add_argument("--sequence", action="store_true", help="one file per frame, also for GLB")
    _smpl_args(p)
    p.set_defaults(func=run_mesh)


def _fit(motion, body, fit_shape: bool, console: Console) -> SmplParams:
    with console.status(f"fitting SMPL to {motion.frames} frames"):
        params, report = fit_smpl(body, motion.joints, fit_shape=fit_shape)
    console.print(f"fitted: mean joint error {report.mean_error_m * 100:.2f} cm, max {report.max_error_m * 100:.2f} cm")
    return params


def _stored_or_fitted(motion, body, console: Console) -> SmplParams:
    """The parameters saved in the motion file by `irg-motion fit`, else a fresh fit."""
    names = ("global_orient", "body_pose", "betas", "transl")
    if set(names) <= motion.smpl.keys():
        return SmplParams(**{k: motion.smpl[k] for k in names})
    return _fit(motion, body, False, console)


def run_fit(args: argparse.Namespace) -> int:
    console = Console()
    motion = load_motion(args.motion)
    body = load_body(args.smpl_dir, args.gender)
    motion.smpl = _fit(motion, body, args.shape, console).as_arrays()
    save_motion(args.out, motion)
    console.print(f"wrote {args.out}")
    return 0


def run_mesh(args: argparse.Namespace) -> int:
    console = Console()
    motion = load_motion(args.motion)
    body = load_body(args.smpl_dir, args.gender)
    vertices = body_vertices(body, _stored_or_fitted(motion, body, console))
    paths = write_mesh_sequence(vertices, body.faces.astype("int64"), args.out, sequence=args.sequence)
    console.print(f"wrote {len(paths)} file(s), {vertices.shape[0]} frames of {vertices.shape[1]} vertices: {paths[0]}")
    return 0
