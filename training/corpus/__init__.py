"""The procedural motion corpus: captioned SMPL-22 clips with exact structured labels.

    rng = np.random.default_rng(0)
    clip = generate_clip(rng)          # Clip(joints (T, 22, 3) at 20 fps, label, captions)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .captions import caption_label
from .composition import MAX_SECONDS, MIN_SECONDS, build_channels, render, sample_label
from .labels import Label, describe_difference


@dataclass
class Clip:
    joints: np.ndarray   # (T, 22, 3) float32, metres, Y up, floor at 0, 20 fps
    label: Label         # timed: each segment's start/end and the duration are filled in
    captions: list[str]  # distinct paraphrases


def generate_clip(rng: np.random.Generator, label: Label | None = None, captions: int = 4) -> Clip:
    """One clip for `label`, or for a random label lasting MIN_SECONDS to MAX_SECONDS."""
    while True:
        chosen = label if label is not None else sample_label(rng)
        channels, timed = build_channels(chosen)  # cheap: check the duration before solving the pose
        if label is not None or MIN_SECONDS <= timed.duration <= MAX_SECONDS:
            return Clip(render(channels), timed, caption_label(timed, rng, captions))


__all__ = ["Clip", "Label", "describe_difference", "generate_clip", "sample_label"]
