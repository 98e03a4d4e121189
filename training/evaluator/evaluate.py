"""The evaluation protocol around an evaluator: sample one caption per clip, crop the clip as the data set's
evaluation loader does, embed both, and compute the metrics of training/metrics.py over repeats."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from training import metrics
from training.evaluator.data import Caption, Item


def crop(features: np.ndarray, rng: np.random.Generator, unit_length: int = 4, max_frames: int = 196) -> np.ndarray:
    """A random window of whole units: the clip's length cut to a multiple of unit_length, one unit
    shorter with probability 1/3, at most max_frames, at a random start."""
    units = min(len(features), max_frames) // unit_length
    if units > 1 and rng.random() < 1 / 3:
        units -= 1
    length = max(units, 1) * unit_length
    start = int(rng.integers(0, len(features) - length + 1))
    return features[start:start + length]


def text_input(evaluator, caption: Caption) -> str:
    """Our evaluator reads captions; the Guo evaluator reads the data set's `word/POS` tokens."""
    return caption.tokens if getattr(evaluator, "reads_pos_tokens", False) else caption.text


def sample_pairs(evaluator, items: Sequence[Item], rng: np.random.Generator) -> tuple[list[str], list[np.ndarray]]:
    """One random caption and one crop per item, in a random order (R-precision chunks mix clips)."""
    order = rng.permutation(len(items))
    texts = [text_input(evaluator, items[i].captions[rng.integers(len(items[i].captions))]) for i in order]
    motions = [crop(items[i].features, rng, evaluator.config.unit_length, evaluator.config.max_frames) for i in order]
    return texts, motions


def evaluate_real(evaluator, items: Sequence[Item], repeats: int = 20, seed: int = 42,
                  progress=None) -> tuple[dict[str, tuple[float, float]], list[dict[str, float]]]:
    """Real-data reference values: top-1/2/3, MM-Dist and Diversity over `repeats` repeats.
    Returns {metric: (mean, 95 % interval)} and the per-repeat values. `progress(k)` is called per repeat."""
    if len(items) < metrics.R_PRECISION_CHUNK:
        raise ValueError(f"the evaluation needs at least {metrics.R_PRECISION_CHUNK} clips, got {len(items)}")
    rng = np.random.default_rng(seed)
    per_repeat = []
    for k in range(repeats):
        texts, motions = sample_pairs(evaluator, items, rng)
        per_repeat.append(metrics.text_motion_metrics(evaluator.embed_texts(texts), evaluator.embed_motions(motions), rng))
        if progress is not None:
            progress(k)
    return metrics.summarize(per_repeat), per_repeat
