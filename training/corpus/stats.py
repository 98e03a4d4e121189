"""Acceptance figures of a corpus folder: physical plausibility, coverage, captions, feature round trip."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.motion.features import recover_from_ric

from . import quality
from .body import FPS
from .primitives import all_primitives


@dataclass
class CorpusStats:
    clips: int
    max_bone_drift_m: float
    max_floor_penetration_m: float
    locomotion_skating_ratio: float   # skating / stance foot frames over locomotion clips
    backward_knee_frames: int
    backward_elbow_frames: int
    max_joint_step_m: float
    missing_primitives: list[str]
    missing_modifiers: list[str]      # "param=value" never seen
    mean_distinct_captions: float
    max_roundtrip_error_m: float


def corpus_stats(folder: str | Path) -> CorpusStats:
    folder = Path(folder)
    labels_path = folder / "labels.jsonl"
    if not labels_path.is_file():
        raise FileNotFoundError(f"{folder}: no labels.jsonl; is this a corpus written by `irg-motion corpus`?")
    labels = [json.loads(line) for line in labels_path.read_text().splitlines() if line.strip()]
    prims = all_primitives()
    seen_actions, seen_mods = set(), set()
    drift = pen = step = rt = 0.0
    skate = stance = knees = elbows = 0
    captions = []
    for label in labels:
        name = label["id"]
        joints = np.load(folder / "new_joints" / f"{name}.npy")
        feats = np.load(folder / "new_joint_vecs" / f"{name}.npy")
        drift = max(drift, quality.bone_length_drift(joints))
        pen = max(pen, quality.floor_penetration(joints))
        step = max(step, quality.max_joint_step(joints))
        knees += quality.backward_knees(joints)
        elbows += quality.backward_elbows(joints)
        rt = max(rt, float(np.abs(recover_from_ric(feats) - joints[:-1]).max()))
        actions = [a for seg in label["segments"] for a in (seg, seg.get("overlay")) if a]
        for a in actions:
            seen_actions.add(a["action"])
            seen_mods.update(f"{k}={v}" for k, v in a["params"].items())
        if any(prims[seg["action"]].category == "locomotion" for seg in label["segments"]):
            s, n = quality.foot_skating(joints, FPS)
            skate, stance = skate + s, stance + n
        lines = (folder / "texts" / f"{name}.txt").read_text().splitlines()
        captions.append(len({line.split("#")[0] for line in lines if line.strip()}))
    all_mods = {f"{k}={v}" for p in prims.values() for k, values in p.choices.items() for v in values}
    return CorpusStats(
        clips=len(labels), max_bone_drift_m=drift, max_floor_penetration_m=pen,
        locomotion_skating_ratio=skate / max(stance, 1), backward_knee_frames=knees, backward_elbow_frames=elbows,
        max_joint_step_m=step, missing_primitives=sorted(set(prims) - seen_actions),
        missing_modifiers=sorted(all_mods - seen_mods), mean_distinct_captions=float(np.mean(captions)) if captions else 0.0,
        max_roundtrip_error_m=rt,
    )
