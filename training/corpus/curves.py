"""Time curves the primitives are built from: eases, envelopes, repeated strokes. All pure, all vectorised."""
from __future__ import annotations

import numpy as np

from .body import FPS


def frames_for(seconds: float) -> int:
    return max(2, int(round(seconds * FPS)))


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 -> 1 with zero slope at both ends (quintic, so accelerations are continuous too)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (x * 6 - 15) + 10)


def ramp(frames: int, start: int, length: int) -> np.ndarray:
    """0 before `start`, eases to 1 over `length` frames."""
    t = np.arange(frames, dtype=float)
    return smoothstep((t - start) / max(length, 1))


def envelope(frames: int, rise: int, fall: int) -> np.ndarray:
    """0 -> 1 over the first `rise` frames, back to 0 over the last `fall` frames."""
    return ramp(frames, 0, rise) * (1.0 - ramp(frames, frames - fall, fall))


def strokes(frames: int, start: int, stop: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` equal strokes filling [start, stop): per frame the stroke progress in [0, 1] and a
    0 -> 1 -> 0 bump (sin^2) that is zero between strokes' ends."""
    t = (np.arange(frames) - start) / max(stop - start, 1) * count
    inside = (t >= 0) & (t < count)
    progress = np.where(inside, t - np.floor(t), np.where(t < 0, 0.0, 1.0))
    bump = np.where(inside, np.sin(np.pi * progress) ** 2, 0.0)
    return progress, bump


def unwrap_lerp_angle(a: float, b: float, w: np.ndarray) -> np.ndarray:
    """Interpolate angles the short way round."""
    delta = (b - a + np.pi) % (2 * np.pi) - np.pi
    return a + delta * w
