"""Text-motion pairs from a HumanML3D-layout folder (our corpus or the real data set).

Each item is a motion (T, D) of unnormalised features with its captions. As in the data set's evaluation
loader, a caption with a time span (`from`/`to` not both 0) becomes an item of its own over that span,
and items outside the length limits are left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS = 20.0
REQUIRED = ("new_joint_vecs", "texts", "Mean.npy", "Std.npy")


@dataclass
class Caption:
    text: str    # the caption as written
    tokens: str  # the data set's `word/POS` tokens, space separated


@dataclass
class Item:
    name: str
    features: np.ndarray  # (T, D) unnormalised
    captions: list[Caption]


def check_data_dir(data_dir: str | Path, split: str) -> Path:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such data folder; pass a HumanML3D-layout folder "
                                "(write one with `irg-motion corpus ...`)")
    missing = [n for n in REQUIRED + (f"{split}.txt",) if not (data_dir / n).exists()]
    if missing:
        raise FileNotFoundError(f"{data_dir}: missing {', '.join(missing)}; a HumanML3D-layout folder has "
                                "new_joint_vecs/, texts/, Mean.npy, Std.npy and train/val/test.txt")
    return data_dir


def parse_text_line(line: str) -> tuple[Caption, float, float]:
    """`caption#tokens#from#to` -> (caption, from, to); NaN tags read as 0."""
    parts = line.strip().split("#")
    if len(parts) < 2:
        raise ValueError(f"not a `caption#tokens#from#to` line: {line!r}")
    tags = [float(p) if p.strip() else 0.0 for p in parts[2:4]] + [0.0, 0.0]
    start, stop = (0.0 if np.isnan(t) else t for t in tags[:2])
    return Caption(parts[0].strip(), parts[1].strip()), start, stop


def load_items(data_dir: str | Path, split: str, min_frames: int = 40, max_frames: int = 199) -> list[Item]:
    """Items of `split` whose feature length lies in [min_frames, max_frames]."""
    data_dir = check_data_dir(data_dir, split)
    names = [n.strip() for n in (data_dir / f"{split}.txt").read_text().splitlines() if n.strip()]
    items = []
    for name in names:
        vec_path, text_path = data_dir / "new_joint_vecs" / f"{name}.npy", data_dir / "texts" / f"{name}.txt"
        if not vec_path.is_file() or not text_path.is_file():
            continue  # the data set's own split files list a few clips that were never processed
        motion = np.load(vec_path).astype(np.float32)
        whole = []
        for k, line in enumerate(l for l in text_path.read_text().splitlines() if l.strip()):
            caption, start, stop = parse_text_line(line)
            if start == 0.0 and stop == 0.0:
                whole.append(caption)
                continue
            span = motion[int(start * FPS):int(stop * FPS)]
            if min_frames <= len(span) <= max_frames:
                items.append(Item(f"{name}:{k}", span, [caption]))
        if whole and min_frames <= len(motion) <= max_frames:
            items.append(Item(name, motion, whole))
    if not items:
        raise ValueError(f"{data_dir}: no {split} clips of {min_frames}-{max_frames} frames with captions")
    return items
