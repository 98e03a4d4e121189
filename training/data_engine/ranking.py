"""Negatives for an anchor: a pool ranked by the evaluator's text-motion similarity, sampled progressively.

Reference section 4: N_neg = 4 negatives are drawn "progressively from a ranked instance pool with a portion
p" (p = 9/10 on HumanML3D). Each round keeps the top (1 - p) most similar of what remains and draws one from
it, so later negatives come from ever closer neighbours of the anchor; the chosen ones are returned least to
most similar, the order of a refinement path toward the goal (Intermediate_Motion_0 .. 3).

Similarity is the negative Euclidean distance between the evaluator's text and motion embeddings: it ranks
exactly like cosine similarity for the project's unit-length embeddings and is what the Guo evaluator's
metrics use. An instance's score against a pool motion is the mean over its captions.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .motions import MotionInstance


def similarity(text_emb: np.ndarray, motion_emb: np.ndarray) -> np.ndarray:
    """(texts, motions) negative Euclidean distances."""
    sq = (text_emb ** 2).sum(1)[:, None] + (motion_emb ** 2).sum(1)[None, :] - 2.0 * text_emb @ motion_emb.T
    return -np.sqrt(np.maximum(sq, 0.0))


def anchor_scores(caption_emb: np.ndarray, motion_emb: np.ndarray) -> np.ndarray:
    """(motions,) similarity of every pool motion to an anchor, averaged over the anchor's captions."""
    return similarity(caption_emb, motion_emb).mean(axis=0)


def progressive_negatives(scores: np.ndarray, eligible: np.ndarray, n: int, portion: float,
                          rng: np.random.Generator) -> list[int]:
    """Indices of up to `n` eligible pool entries, least to most similar. Each round keeps the
    ceil((1 - portion) * remaining) most similar of the remaining pool (never fewer than the rounds still
    to go) and draws one of them uniformly."""
    if not 0.0 <= portion < 1.0:
        raise ValueError(f"--portion must be in [0, 1), got {portion}")
    remaining = np.flatnonzero(eligible)
    remaining = remaining[np.argsort(-scores[remaining], kind="stable")]   # most similar first
    chosen = []
    for round_ in range(min(n, len(remaining))):
        keep = max(math.ceil((1.0 - portion) * len(remaining)), n - round_)
        remaining = remaining[:keep]
        pick = int(rng.integers(len(remaining)))
        chosen.append(int(remaining[pick]))
        remaining = np.delete(remaining, pick)
    return sorted(chosen, key=lambda i: (scores[i], i))


def embed(evaluator, motions: Sequence[MotionInstance]) -> tuple[list[np.ndarray], np.ndarray]:
    """Each instance's caption embeddings (a list of (captions, D)) and all motion embeddings (N, D), computed
    once in batches. The Guo evaluator reads the data set's `word/POS` tokens where there are any."""
    pos = getattr(evaluator, "reads_pos_tokens", False)
    texts = [tok if pos and tok else cap for m in motions for cap, tok in zip(m.captions, m.tokens)]
    flat = evaluator.embed_texts(texts)
    ends = np.cumsum([len(m.captions) for m in motions])
    return np.split(flat, ends[:-1]), evaluator.embed_motions([m.features for m in motions])
