"""`irg-motion fetch-release DIR`: fill a release folder (reference section 2.3). What the Hugging Face hub has
(google/gemma-2-2b-it, the IRG-MotionLLM checkpoint) is downloaded with huggingface_hub when online; for the rest,
and for everything when offline (HF_HUB_OFFLINE=1) or when a download fails, it prints which file goes where."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from backend.models.release import (CHECKPOINT_SUFFIXES, HUB_BASE, HUB_RELEASE, RELEASE_BASE, describe_missing,
                                    missing_release_files, release_checkpoints)

HUB_DIR = ".hub"   # the IRG repo snapshot; its checkpoint file is linked to the top of DIR


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fetch-release", help="download the released IRG-MotionLLM weights, or say what goes where")
    p.add_argument("dir", type=Path, help="the release folder to fill (then: irg-motion generate --model DIR ...)")
    p.add_argument("--repo", default=HUB_RELEASE, help=f"the IRG-MotionLLM hub repo (default {HUB_RELEASE})")
    p.add_argument("--checkpoint", default=None,
                   help="the file of the IRG repo to serve, when it holds several (default: the only one)")
    p.set_defaults(func=run)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _download(folder: Path, repo: str, checkpoint: str | None, console: Console) -> list[str]:
    """Download what the hub has; returns the problems met (empty when everything went through)."""
    from huggingface_hub import snapshot_download

    problems = []
    if any(m.path.startswith(RELEASE_BASE) for m in missing_release_files(folder)):
        try:
            console.print(f"downloading {HUB_BASE} into {folder / RELEASE_BASE} ...")
            snapshot_download(HUB_BASE, local_dir=folder / RELEASE_BASE,
                              allow_patterns=["*.json", "*.safetensors", "tokenizer.model"])
        except Exception as exc:  # noqa: BLE001 - network, auth (gated repo), disk: all reported the same way
            problems.append(f"{HUB_BASE}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    if not release_checkpoints(folder):
        hub = folder / HUB_DIR / repo.replace("/", "__")
        try:
            console.print(f"downloading {repo} into {hub} ...")
            snapshot_download(repo, local_dir=hub)
            files = sorted(p for p in hub.rglob("*") if p.suffix in CHECKPOINT_SUFFIXES and p.name != "vqvae.pth")
            if checkpoint:
                files = [p for p in files if p.name == checkpoint or str(p.relative_to(hub)) == checkpoint]
            if len(files) == 1:
                os.symlink(files[0].resolve(), folder / files[0].name)
            else:
                problems.append(f"{repo} holds {len(files)} matching checkpoint files "
                                f"({', '.join(str(p.relative_to(hub)) for p in files[:8])}); pick one with --checkpoint")
            for name in ("vqvae.pth", "mean.npy", "std.npy"):   # in case the repo ships them
                found = sorted(hub.rglob(name))
                if found and not (folder / name).exists():
                    os.symlink(found[0].resolve(), folder / name)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{repo}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return problems


def run(args: argparse.Namespace) -> int:
    console = Console()
    folder = args.dir.expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    if offline():
        console.print("offline (HF_HUB_OFFLINE is set): nothing is downloaded.", highlight=False)
    elif missing_release_files(folder):
        for problem in _download(folder, args.repo, args.checkpoint, console):
            console.print(f"[yellow]download failed:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    missing = missing_release_files(folder)
    if not missing:
        console.print(f"{folder} is a complete release folder: irg-motion generate --model {folder} \"...\"",
                      highlight=False, soft_wrap=True)
        return 0
    console.print(escape(describe_missing(folder, missing)).replace(
        "(`irg-motion fetch-release DIR` downloads what the hub has and prints the rest)",
        f"Put each file at the path shown, under {folder}; then run irg-motion fetch-release {folder} again "
        "to check."), highlight=False, soft_wrap=True)
    return 2
