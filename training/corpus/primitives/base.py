"""What a primitive is, and the small authoring helpers every primitive uses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..body import SIDE_SIGN, Channels, neutral
from ..curves import smoothstep

SPEED_FACTOR = {"slow": 0.7, "normal": 1.0, "fast": 1.4}
SIDE_INDEX = {"left": (0,), "right": (1,), "both": (0, 1)}


@dataclass(frozen=True)
class Start:
    """Where a primitive begins: standing (or sitting) with the pelvis over `xz`, facing `heading`.
    Primitives build on a floor at y = 0; in the end state they return, `floor` is how much higher the
    floor is at the end than at the start (stairs), which the composition accumulates."""
    xz: tuple[float, float] = (0.0, 0.0)
    heading: float = 0.0
    posture: str = "standing"
    floor: float = 0.0


@dataclass(frozen=True)
class Primitive:
    name: str
    category: str                                  # locomotion, upper_body or whole_body
    choices: dict[str, tuple] = field(default_factory=dict)  # each parameter and the values it takes
    build: Callable[[dict, Start], tuple[Channels, Start]] = None  # type: ignore[assignment]
    start_posture: str = "standing"
    end_posture: str = "standing"

    def sample_params(self, rng: np.random.Generator) -> dict:
        return {key: values[int(rng.integers(len(values)))] for key, values in self.choices.items()}


def keyed(frames: int, keys: list[tuple[float, object]]) -> np.ndarray:
    """A curve through (frame, value) keys, eased between keys and held before the first and after the last."""
    times = np.array([k[0] for k in keys], float)
    values = np.array([np.asarray(k[1], float) for k in keys])
    t = np.arange(frames, dtype=float)
    idx = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(keys) - 1)
    nxt = np.minimum(idx + 1, len(keys) - 1)
    span = np.maximum(times[nxt] - times[idx], 1e-9)
    w = smoothstep((t - times[idx]) / span)
    w = w.reshape(w.shape + (1,) * (values.ndim - 1))
    return values[idx] + (values[nxt] - values[idx]) * w


def set_arm(ch: Channels, side: int, wrist, pole, weight: np.ndarray) -> None:
    """Blend an arm towards a wrist/pole track authored for the LEFT arm (mirrored for the right)."""
    sign = np.array([SIDE_SIGN[side], 1.0, 1.0])
    blend_arm(ch, side, np.asarray(wrist, float) * sign, np.asarray(pole, float) * sign, weight)


def blend_arm(ch: Channels, side: int, wrist: np.ndarray, pole: np.ndarray, weight: np.ndarray) -> None:
    """Blend one arm's channels towards a wrist/pole track already in that arm's coordinates."""
    w = np.asarray(weight, float)[:, None]
    wrist = np.broadcast_to(wrist, (len(w), 3))
    # A hand rising towards the head swings out in front on the way, so the wrist never passes close
    # to the shoulder (where the elbow would flip from one side to the other within a frame).
    rise = np.clip((wrist[:, 1:2] - ch.wrists[:, side, 1:2]) / 0.6, 0.0, 1.0)
    bulge = 4 * w * (1 - w) * rise * np.array([0.08 * SIDE_SIGN[side], 0.0, 0.25])
    ch.wrists[:, side] = ch.wrists[:, side] * (1 - w) + (wrist + bulge) * w
    ch.elbow_poles[:, side] = ch.elbow_poles[:, side] * (1 - w) + pole * w


def standing(frames: int, start: Start) -> Channels:
    return neutral(frames, start.xz, start.heading)

