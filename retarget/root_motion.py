"""Where the character goes: stride scaling by leg length, the root modes, and the ground snap.

All positions here are world space, Z up, metres (after the Y-up to Z-up conversion).
"""
from __future__ import annotations

import numpy as np

ROOT_MODES = ("travel", "in_place", "root_bone")
# Window of the moving average that separates travel (slow) from sway and bob (fast), in seconds.
TRAVEL_WINDOW_S = 1.0


def leg_length_scale(source_leg_length: float, target_leg_length: float) -> float:
    """Factor on the pelvis translation so strides follow the target's legs (no foot skating from scale)."""
    if source_leg_length <= 1e-6 or target_leg_length <= 1e-6:
        raise ValueError("cannot scale root motion: a leg has zero length (are hip, knee and ankle bones mapped?)")
    return target_leg_length / source_leg_length


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0. The ends are padded by point reflection, so a steady walk stays a
    straight line to the last frame instead of bending towards a held end value."""
    window = max(1, int(window) | 1)  # odd, so the average is centred
    half = min(window // 2, len(values) - 1)
    window = 2 * half + 1
    if window == 1:
        return values.copy()
    head = 2 * values[:1] - values[half:0:-1]
    tail = 2 * values[-1:] - values[-2:-half - 2:-1]
    padded = np.concatenate([head, values, tail])
    cumulative = np.cumsum(np.concatenate([np.zeros_like(values[:1]), padded]), axis=0)
    return (cumulative[window:] - cumulative[:-window]) / window


def travel_path(pelvis: np.ndarray, fps: float) -> np.ndarray:
    """The slow ground-plane path (T, 2) of the pelvis: its XY with steps' sway averaged out."""
    return moving_average(pelvis[:, :2], round(TRAVEL_WINDOW_S * fps))


def in_place(pelvis: np.ndarray, fps: float) -> np.ndarray:
    """Remove the XY travel but keep the sway and the bob; the character stays where frame 0 starts."""
    path = travel_path(pelvis, fps)
    result = pelvis.copy()
    result[:, :2] -= path - path[:1]
    return result


def heading_yaw(pelvis_rotations: np.ndarray, fps: float) -> np.ndarray:
    """Yaw (T,) about +Z of the pelvis facing, relative to Blender's front (-Y), smoothed like the travel path."""
    forward = pelvis_rotations @ np.array([0.0, -1.0, 0.0])
    flat = moving_average(forward[:, :2], round(TRAVEL_WINDOW_S * fps))
    return np.arctan2(flat[:, 0], -flat[:, 1])


def yaw_matrices(yaw: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    m = np.zeros(yaw.shape + (3, 3))
    m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1], m[..., 2, 2] = c, -s, s, c, 1.0
    return m


def ground_offset(foot_heights: np.ndarray, rest_heights: np.ndarray) -> float:
    """Vertical shift that puts the lowest foot point of the whole take on the ground.

    foot_heights (T, K) and rest_heights (K,): heights of the foot points in the take and at rest, where the
    rig stands on its ground. After the shift no foot point dips below the height it has when standing.
    """
    return float(-(foot_heights - rest_heights).min())
