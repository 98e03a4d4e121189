"""A synthetic walk built from joint positions with exact bone lengths: the pelvis glides forward while
each foot alternately stays planted and swings to its next footprint (placed by two-bone IK)."""
from __future__ import annotations

import numpy as np

from retarget.skeleton import PARENTS, REST_JOINTS

FPS = 20.0


def _two_bone(hip: np.ndarray, target: np.ndarray, upper: float, lower: float) -> np.ndarray:
    """Knee position for a leg reaching `target`, bending forward (+Z) in the sagittal plane."""
    d = target - hip
    dist = np.clip(np.linalg.norm(d, axis=-1, keepdims=True), 1e-6, upper + lower - 1e-6)
    along = (upper**2 - lower**2 + dist**2) / (2 * dist)
    height = np.sqrt(np.maximum(upper**2 - along**2, 0.0))
    axis = d / np.linalg.norm(d, axis=-1, keepdims=True)
    bend = np.array([0.0, 0.0, 1.0]) - axis * axis[..., 2:3]
    bend /= np.linalg.norm(bend, axis=-1, keepdims=True)
    return hip + axis * along + bend * height


def synthetic_walk(steps: int = 6, step_frames: int = 6, stride: float = 0.4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns joints (T,22,3) and, per frame, whether the left and right ankles are planted (bool (T,))."""
    rest = REST_JOINTS - np.array([0.0, REST_JOINTS[:, 1].min(), 0.0])  # feet on the floor
    frames = steps * step_frames + 1
    t = np.arange(frames)
    joints = np.repeat(rest[None], frames, axis=0)
    speed = stride / (2 * step_frames)  # the pelvis moves half a stride per step
    joints = joints + (t * speed)[:, None, None] * np.array([0.0, 0.0, 1.0])
    joints[..., 1] -= 0.06  # bend the knees a little so the legs never fully stretch

    planted = {}
    for side, (hip, knee, ankle, foot), lead in (("left", (1, 4, 7, 10), 0), ("right", (2, 5, 8, 11), 1)):
        upper = np.linalg.norm(rest[knee] - rest[hip])
        lower = np.linalg.norm(rest[ankle] - rest[knee])
        step = np.minimum(t // step_frames, steps - 1)
        phase = (t - step * step_frames) / step_frames
        swinging = step % 2 == lead          # left swings on even steps, right on odd ones
        swings_done = (step + 1 - lead) // 2  # completed swings of this foot before the current step
        progress = swings_done + np.where(swinging, phase, 0.0)
        target = np.repeat(rest[ankle][None], frames, axis=0)
        target[:, 2] += stride * progress
        target[:, 1] += np.where(swinging, 0.08 * np.sin(np.pi * phase), 0.0)
        joints[:, knee] = _two_bone(joints[:, hip], target, upper, lower)
        joints[:, ankle] = target
        joints[:, foot] = target + (rest[foot] - rest[ankle])
        planted[side] = ~swinging | (phase == 0.0) | (phase == 1.0)
    # bone lengths of the legs must match the rest skeleton exactly
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, list(PARENTS[1:])], axis=-1)
    rest_lengths = np.linalg.norm(rest[1:] - rest[list(PARENTS[1:])], axis=-1)
    assert np.allclose(lengths, rest_lengths, atol=1e-6), "synthetic walk broke a bone length"
    return joints.astype(np.float32), planted["left"], planted["right"]
