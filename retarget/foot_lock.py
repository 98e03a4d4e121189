"""Planted feet stay planted: contact detection, pin positions blended in and out, analytic two-bone IK."""
from __future__ import annotations

import numpy as np

from retarget.root_motion import moving_average

CONTACT_HEIGHT_M = 0.05     # above the foot's lowest height in the take
CONTACT_SPEED_M_S = 0.4     # horizontal speed below which a low foot counts as planted
DETECT_SMOOTH_S = 0.25      # contacts: speed judged on the path averaged over this long (jitter is not motion)
JITTER_S = 0.25             # around a contact the foot eases onto its running median over this long
BLEND_S = 0.15              # time to fade the lock in before a contact and out after it
MIN_CONTACT_S = 0.1


def detect_contacts(foot: np.ndarray, fps: float) -> np.ndarray:
    """Frames (T,) bool where a foot joint (T, 3), Z up, metres, is low and (apart from jitter) still."""
    height = foot[:, 2] - foot[:, 2].min()
    # still on the raw path (clean motion, up to the last frame of a stance) or on the averaged one (trembling feet)
    still = (_speed(foot[:, :2], fps) < CONTACT_SPEED_M_S) | (
        _speed(moving_average(foot[:, :2], round(DETECT_SMOOTH_S * fps)), fps) < CONTACT_SPEED_M_S)
    contact = (height < CONTACT_HEIGHT_M) & still
    min_frames = max(1, round(MIN_CONTACT_S * fps))
    for start, end in contact_spans(contact):
        if end - start < min_frames:
            contact[start:end] = False
    return contact


def _running_median(path: np.ndarray, window: int) -> np.ndarray:
    """Centred running median along axis 0 (ends padded with the end values). A median leaves a path that only
    moves forward untouched, where an average would lag behind an accelerating foot; jitter it removes."""
    half = max(1, int(window)) // 2
    padded = np.concatenate([np.repeat(path[:1], half, 0), path, np.repeat(path[-1:], half, 0)])
    return np.median(np.stack([padded[k:k + len(path)] for k in range(2 * half + 1)]), axis=0)


def _speed(path: np.ndarray, fps: float) -> np.ndarray:
    """Per frame, the larger of the speeds into and out of it (T,)."""
    step = np.linalg.norm(np.diff(path, axis=0), axis=-1) * fps
    if len(step) < 2:
        return np.zeros(len(path))
    return np.concatenate([step[:1], np.maximum(step[1:], step[:-1]), step[-1:]])


def contact_spans(contact: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) frame ranges where contact is True."""
    edges = np.diff(np.concatenate([[0], contact.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def lock_goals(positions: np.ndarray, contact: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, where the foot should be (T, 3) and how strongly the lock applies (T,) in [0, 1].

    Each contact span pins the foot at its mean ground position (X, Y; the height is left alone, so heel strike
    and heel lift stay, and a foot never goes lower than it was). Around the span the foot follows its smoothed
    path moved to start or end at the pin, blended back to its own path (smoothstep) over BLEND_S: a foot that
    neither slid nor trembled is left as it was, and one that did eases into and out of its footprint.
    """
    frames = len(positions)
    blend = max(1, round(BLEND_S * fps))
    t = np.arange(frames)
    goals = positions.copy()
    ground = positions[:, :2]
    smooth = _running_median(ground, round(JITTER_S * fps))
    weights = np.zeros(frames)
    for start, end in contact_spans(contact):
        pin = ground[start:end].mean(axis=0)
        distance = np.maximum(start - t, t - (end - 1)).clip(min=0)
        ramp = np.clip(1.0 - distance / (blend + 1), 0.0, 1.0)
        w = ramp * ramp * (3 - 2 * ramp)
        stronger = w > weights
        edge = np.clip(t, start, end - 1)  # the span frame nearest to each frame
        # near the span the foot eases from its own path onto the smoothed path carried to the pin: the pin's
        # offset fades, and so does the jitter (a generated foot trembles around its footprint)
        shifted = ground + w[:, None] * (smooth - smooth[edge] + pin - ground)
        goals[stronger, :2] = np.where((distance == 0)[:, None], pin, shifted)[stronger]
        weights = np.maximum(weights, w)
    return goals, weights


def two_bone_ik(root: np.ndarray, mid: np.ndarray, end: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New (mid, end) positions (T, 3) so the chain root-mid-end reaches `goal`, keeping both bone lengths
    and the plane the chain bends in (the old mid joint is the pole). Unreachable goals get a straight limb
    pointing at them."""
    upper = np.linalg.norm(mid - root, axis=-1, keepdims=True)
    lower = np.linalg.norm(end - mid, axis=-1, keepdims=True)
    to_goal = goal - root
    dist = np.linalg.norm(to_goal, axis=-1, keepdims=True)
    axis = to_goal / np.maximum(dist, 1e-9)
    dist = np.clip(dist, np.abs(upper - lower) + 1e-6, upper + lower - 1e-6)
    pole = (mid - root) - ((mid - root) * axis).sum(-1, keepdims=True) * axis
    pole_len = np.linalg.norm(pole, axis=-1, keepdims=True)
    # a straight limb has no bend plane: keep the old end's side as the bend direction
    fallback = (end - root) - ((end - root) * axis).sum(-1, keepdims=True) * axis
    pole = np.where(pole_len > 1e-6, pole, fallback)
    pole = pole / np.maximum(np.linalg.norm(pole, axis=-1, keepdims=True), 1e-9)
    along = (upper**2 - lower**2 + dist**2) / (2 * dist)
    height = np.sqrt(np.maximum(upper**2 - along**2, 0.0))
    new_mid = root + axis * along + pole * height
    return new_mid, root + axis * dist
