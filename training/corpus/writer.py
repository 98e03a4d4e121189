"""Write a corpus in the HumanML3D layout, deterministically for a seed whatever the number of workers."""
from __future__ import annotations

import json
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from rich.progress import Progress

from backend.motion.features import extract_features
from backend.motion.normalize import compute_mean_std

from . import generate_clip
from .captions import text_line

SPLITS = (("train", 0.80), ("val", 0.05), ("test", 0.15))
MAX_STAT_CLIPS = 4000  # Mean/Std from at most this many clips (a seeded subset), to bound memory


def clip_id(index: int) -> str:
    return f"{index:06d}"


def _make(job: tuple[str, int, int]) -> tuple[int, np.ndarray, dict]:
    out, seed, index = job
    clip = generate_clip(np.random.default_rng([seed, index]))
    extracted = extract_features(clip.joints)
    name = clip_id(index)
    root = Path(out)
    np.save(root / "new_joints" / f"{name}.npy", extracted.positions)
    np.save(root / "new_joint_vecs" / f"{name}.npy", extracted.features)
    (root / "texts" / f"{name}.txt").write_text("\n".join(text_line(c) for c in clip.captions) + "\n")
    return index, extracted.features, {"id": name, **clip.label.to_dict()}


def write_corpus(out: str | Path, clips: int, seed: int, workers: int = 2) -> Path:
    if clips < 1:
        raise ValueError(f"--clips must be at least 1, got {clips}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; choose a new folder for the corpus")
    for sub in ("new_joints", "new_joint_vecs", "texts"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    stat_ids = set(np.random.default_rng(seed).permutation(clips)[:MAX_STAT_CLIPS].tolist())
    labels: dict[int, dict] = {}
    features: dict[int, np.ndarray] = {}
    jobs = [(str(out), seed, i) for i in range(clips)]
    with Progress() as progress:
        task = progress.add_task("generating clips", total=clips)
        if workers > 1:
            pool = get_context("fork").Pool(workers)
            results = pool.imap_unordered(_make, jobs, chunksize=16)
        else:
            pool, results = None, map(_make, jobs)
        try:
            for index, feats, label in results:
                labels[index] = label
                if index in stat_ids:
                    features[index] = feats
                progress.advance(task)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    mean, std = compute_mean_std([features[i] for i in sorted(features)])
    np.save(out / "Mean.npy", mean)
    np.save(out / "Std.npy", std)
    with open(out / "labels.jsonl", "w") as f:
        for i in range(clips):
            f.write(json.dumps(labels[i]) + "\n")
    order = np.random.default_rng(seed + 1).permutation(clips)
    start = 0
    for k, (name, share) in enumerate(SPLITS):
        stop = clips if k == len(SPLITS) - 1 else start + int(round(share * clips))
        (out / f"{name}.txt").write_text("".join(clip_id(i) + "\n" for i in sorted(order[start:stop])))
        start = stop
    return out
