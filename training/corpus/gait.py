"""Stepping: footprints and swings for any root path (walks, runs, side steps, turns on the spot, stairs).

Steps alternate feet at a fixed cadence. Each foot stays exactly on its footprint while planted; a step
lifts the foot straight up first, carries it to the next footprint and sets it straight down, so a foot
near the floor never slides. A footprint is where the foot stands under the pelvis at the middle of its
coming stance; the last step of each foot lands under the final pose, so every gait ends standing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .body import FPS, standing_toes
from .curves import smoothstep, unwrap_lerp_angle


FIRST_STEP = 0.1  # seconds before the first foot lifts
SETTLE = 0.15     # seconds both feet stand still at the end


@dataclass(frozen=True)
class GaitStyle:
    cadence: float          # steps per second
    duty: float = 0.6       # fraction of a stride a foot is planted (< 0.5: both feet leave the floor)
    clearance: float = 0.12  # toe lift at mid-swing, metres
    widen: float = 0.0      # extra distance of each footprint from the midline
    heel_raise: float = 0.0  # constant heel raise (tiptoeing)


@dataclass
class Feet:
    toes: np.ndarray        # (T, 2, 3)
    yaw: np.ndarray         # (T, 2)
    pitch: np.ndarray       # (T, 2)
    steps: int


def step_feet(root_xz: np.ndarray, heading: np.ndarray, style: GaitStyle, rise: float = 0.0) -> Feet:
    """Footwork for a root path sampled at FPS, left foot first. `rise` lifts each footprint one stair
    above the last."""
    frames = len(root_xz)
    period = 1.0 / style.cadence
    swing = min(2.0 * period * (1.0 - style.duty), 2.0 * period - 0.05)
    end_time = (frames - 1) / FPS
    starts = []
    while FIRST_STEP + len(starts) * period + swing <= end_time - SETTLE:
        starts.append(FIRST_STEP + len(starts) * period)
    if len(starts) < 2:
        raise ValueError(f"a gait of {frames} frames is too short for two steps at {style.cadence:g} steps/s")

    home = standing_toes(root_xz, heading, style.widen)
    toes = home[0].copy()[None].repeat(frames, 0)
    yaw = np.full((frames, 2), float(heading[0]))
    t = np.arange(frames) / FPS
    last_step = {s: max(i for i in range(len(starts)) if i % 2 == s) for s in (0, 1)}
    stair = [0.0, 0.0]
    for i, t0 in enumerate(starts):
        side = i % 2
        t1 = t0 + swing
        if i == last_step[side]:
            land_frame = frames - 1
            height = stair[1 - side] if rise else 0.0  # the closing step joins the other foot's stair
        else:
            land_frame = min(int(round((t1 + (2 * period - swing) / 2) * FPS)), frames - 1)
            height = rise * (i + 1)
        target = home[land_frame, side].copy()
        target[1] = height
        target_yaw = heading[land_frame]
        origin, origin_yaw = toes[int(np.floor(t0 * FPS)), side].copy(), yaw[int(np.floor(t0 * FPS)), side]
        s = np.clip((t - t0) / swing, 0.0, 1.0)
        moving = (t > t0) & (t < t1)
        after = t >= t1
        along = 0.5 - 0.5 * np.cos(np.pi * np.clip((s - 0.08) / 0.84, 0, 1))
        up = smoothstep(s / 0.55)
        lift = style.clearance * np.sin(np.pi * s) ** 0.5
        path = origin + (target - origin) * along[:, None]
        path[:, 1] = origin[1] + (target[1] - origin[1]) * up + lift
        toes[moving, side] = path[moving]
        toes[after, side] = target
        yaw[moving, side] = unwrap_lerp_angle(origin_yaw, target_yaw, along[moving])
        yaw[after, side] = target_yaw
        stair[side] = height
    pitch = np.full((frames, 2), style.heel_raise)
    return Feet(toes=toes, yaw=yaw, pitch=pitch, steps=len(starts))

