"""Text-to-motion metrics as pure numpy functions.

Embedding metrics follow the Guo et al. protocol that HumanML3D papers report (R-precision and MM-Dist
in chunks of 32 with the partial last chunk dropped, FID, Diversity over 300 pairs, MultiModality, and
a 95 % interval of 1.96·std/√n over repeats). Motion-quality metrics work on joint positions
(T, 22, 3) in metres, Y up, floor at y = 0, at `fps` frames per second. docs/evaluation.md has the
definitions and the numbers they give on real data.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
from scipy import linalg

R_PRECISION_CHUNK = 32
FEET = (10, 11)  # SMPL-22 left and right foot (toe-base) joints


def euclidean_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D) x (M, D) -> (N, M) Euclidean distances."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    squared = (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None, :]
    return np.sqrt(np.maximum(squared, 0.0))


def _chunks(text_emb: np.ndarray, motion_emb: np.ndarray, chunk: int):
    text_emb, motion_emb = np.asarray(text_emb), np.asarray(motion_emb)
    if text_emb.shape != motion_emb.shape or text_emb.ndim != 2:
        raise ValueError(f"text and motion embeddings must be matching (N, D) arrays, got {text_emb.shape} and {motion_emb.shape}")
    if len(text_emb) < chunk:
        raise ValueError(f"R-precision needs at least {chunk} text-motion pairs, got {len(text_emb)}")
    for start in range(0, len(text_emb) - chunk + 1, chunk):
        yield euclidean_distances(text_emb[start:start + chunk], motion_emb[start:start + chunk])


def r_precision(text_emb: np.ndarray, motion_emb: np.ndarray, top_k: int = 3, chunk: int = R_PRECISION_CHUNK) -> np.ndarray:
    """Top-1..top_k R-precision of pairs (text_emb[i], motion_emb[i]): each text ranks the `chunk` motions
    of its chunk by distance; a hit at k when its own motion is among the k nearest. Consecutive chunks,
    the partial last one dropped. Returns an array of top_k fractions."""
    hits, count = np.zeros(top_k), 0
    for dist in _chunks(text_emb, motion_emb, chunk):
        rank = (dist < np.diag(dist)[:, None]).sum(1)  # motions strictly nearer than the matching one
        hits += [(rank < k).sum() for k in range(1, top_k + 1)]
        count += len(dist)
    return hits / count


def matching_score(text_emb: np.ndarray, motion_emb: np.ndarray, chunk: int = R_PRECISION_CHUNK) -> float:
    """MM-Dist: mean distance between matched text and motion embeddings, over the same chunks as R-precision."""
    return float(np.mean([np.diag(d).mean() for d in _chunks(text_emb, motion_emb, chunk)]))


def frechet_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """FID: Fréchet distance between Gaussians fitted (mean, covariance) to two sets of embeddings (N, D)."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1] or min(len(real), len(generated)) < 2:
        raise ValueError(f"FID needs two (N>=2, D) embedding sets of the same width, got {real.shape} and {generated.shape}")
    mu1, mu2 = real.mean(0), generated.mean(0)
    cov1, cov2 = np.cov(real, rowvar=False), np.cov(generated, rowvar=False)
    covmean = linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all():  # singular product: regularise both covariances a little
        offset = np.eye(len(cov1)) * 1e-6
        covmean = linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    covmean = np.real(covmean)
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean), 0.0))


def diversity(emb: np.ndarray, rng: np.random.Generator, pairs: int = 300) -> float:
    """Mean distance between `pairs` random pairs of embeddings (two draws without replacement)."""
    emb = np.asarray(emb, np.float64)
    if len(emb) < pairs:
        raise ValueError(f"diversity over {pairs} pairs needs at least {pairs} samples, got {len(emb)}")
    first, second = rng.choice(len(emb), pairs, replace=False), rng.choice(len(emb), pairs, replace=False)
    return float(np.linalg.norm(emb[first] - emb[second], axis=1).mean())


def multimodality(emb: np.ndarray, rng: np.random.Generator, picks: int = 10) -> float:
    """MultiModality of (texts, repeats, D) embeddings, several generations per text: the mean distance
    between `picks` random pairs of generations of the same text."""
    emb = np.asarray(emb, np.float64)
    if emb.ndim != 3 or emb.shape[1] < picks:
        raise ValueError(f"multimodality needs (texts, repeats >= {picks}, D) embeddings, got {emb.shape}")
    first, second = rng.choice(emb.shape[1], picks, replace=False), rng.choice(emb.shape[1], picks, replace=False)
    return float(np.linalg.norm(emb[:, first] - emb[:, second], axis=-1).mean())


def text_motion_metrics(text_emb: np.ndarray, motion_emb: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """One repeat of the real-data protocol: R-precision top-1/2/3, MM-Dist, Diversity (300 pairs, or 100
    when there are at most 300 motions, or as many pairs as motions below 100)."""
    top = r_precision(text_emb, motion_emb)
    pairs = 300 if len(motion_emb) > 300 else min(100, len(motion_emb))
    return {"top1": float(top[0]), "top2": float(top[1]), "top3": float(top[2]),
            "mm_dist": matching_score(text_emb, motion_emb), "diversity": diversity(motion_emb, rng, pairs)}


def mean_and_interval(values: Iterable[float]) -> tuple[float, float]:
    """Mean and 95 % interval half-width 1.96·std/√n of repeated measurements (std with ddof 0, as reported)."""
    values = np.asarray(list(values), np.float64)
    if values.size == 0:
        raise ValueError("no values to summarise")
    return float(values.mean()), float(1.96 * values.std() / np.sqrt(values.size))


def summarize(repeats: Iterable[Mapping[str, float]]) -> dict[str, tuple[float, float]]:
    """Per metric (mean, 95 % interval) over a list of per-repeat metric dicts."""
    repeats = list(repeats)
    return {name: mean_and_interval(r[name] for r in repeats) for name in repeats[0]}


def _check_joints(joints: np.ndarray, min_frames: int) -> np.ndarray:
    joints = np.asarray(joints, np.float64)
    if joints.ndim != 3 or joints.shape[2] != 3 or joints.shape[1] <= max(FEET):
        raise ValueError(f"joints must be (frames, 22, 3), got {joints.shape}")
    if len(joints) < min_frames:
        raise ValueError(f"this metric needs at least {min_frames} frames, got {len(joints)}")
    return joints


def foot_skating_ratio(joints: np.ndarray, fps: float = 20.0, height: float = 0.05, speed: float = 0.5) -> float:
    """Fraction of foot-frames near the ground (foot joint below `height` m in both frames of a step)
    in which the foot slides horizontally faster than `speed` m/s. 0 when no foot is ever near the ground."""
    feet = _check_joints(joints, 2)[:, FEET]
    low = feet[..., 1] < height
    near = low[1:] & low[:-1]
    sliding = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=0), axis=-1) * fps > speed
    return float((near & sliding).sum() / near.sum()) if near.any() else 0.0


def ground_penetration(joints: np.ndarray, floor: float = 0.0) -> float:
    """Mean depth (m) of the lowest joint below the floor, per frame (0 for frames above it)."""
    lowest = _check_joints(joints, 1)[..., 1].min(axis=1)
    return float(np.maximum(floor - lowest, 0.0).mean())


def jitter(joints: np.ndarray, fps: float = 20.0) -> float:
    """Mean joint jerk (m/s³): the norm of the third time difference of positions, over joints and frames."""
    jerk = np.diff(_check_joints(joints, 4), n=3, axis=0) * fps**3
    return float(np.linalg.norm(jerk, axis=-1).mean())


def motion_quality(joints: np.ndarray, fps: float = 20.0) -> dict[str, float]:
    return {"skating": foot_skating_ratio(joints, fps), "penetration": ground_penetration(joints),
            "jitter": jitter(joints, fps)}
