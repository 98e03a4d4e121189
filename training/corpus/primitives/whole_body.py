"""Lower- and whole-body actions: kicks, squats, lunges, sitting, crouching, kneeling, bows, toe touches,
jumping jacks. Feet stay on their prints unless the action moves them; the pelvis height is what the
action asks for, capped by what the legs reach."""
from __future__ import annotations

import numpy as np

from ..body import STAND_HEIGHT, yaw_vectors
from ..curves import envelope, frames_for, strokes
from .base import SPEED_FACTOR, Primitive, Start, keyed, set_arm, standing
from .locomotion import _jumps

SIT_HEIGHT, SIT_BACK = 0.50, 0.28
GUARD = ((-0.05, -0.20, 0.20), (0.4, -1.0, -0.3))


def _repeat(p: dict, stroke: float, hold: float = 0.0) -> tuple[int, int, int]:
    speed = SPEED_FACTOR[p.get("speed", "normal")]
    lead = frames_for(0.2)
    body = frames_for((stroke * p.get("count", 1) + hold) / speed)
    return lead + body + lead, lead, lead + body


def _lift_foot(ch, side: int, forward, left, bump, ahead: float, out: float, up: float) -> None:
    """Move one foot by (ahead, out, up) metres, scaled by bump; up first so it never slides on the floor."""
    sign = 1.0 if side == 0 else -1.0
    horizontal = bump**2
    ch.toes[:, side, 0] += (forward[0] * ahead + left[0] * out * sign) * horizontal
    ch.toes[:, side, 2] += (forward[1] * ahead + left[1] * out * sign) * horizontal
    ch.toes[:, side, 1] += up * np.sqrt(bump)


def kick(p: dict, s: Start):
    frames, a, b = _repeat(p, 1.0)
    ch = standing(frames, s)
    side = {"left": 0, "right": 1}[p["side"]]
    _, bump = strokes(frames, a, b, p["count"])
    forward, left = yaw_vectors(np.array(s.heading))
    high = {"low": 0.35, "high": 0.6}[p["height"]]
    if p["direction"] == "front":
        _lift_foot(ch, side, forward, left, bump, 0.45 + 0.2 * (high > 0.5), 0.0, high)
        ch.spine[:, 0] -= 0.15 * bump
    else:
        _lift_foot(ch, side, forward, left, bump, 0.05, 0.45, high * 0.8)
        ch.knee_out[:, side] = 2.0 * bump
        ch.spine[:, 1] += (0.3 if side == 1 else -0.3) * bump  # lean away from the kick
    w = envelope(frames, a, frames - b)
    for arm in (0, 1):
        set_arm(ch, arm, *GUARD, w)
    return ch, s


def squat(p: dict, s: Start):
    frames, a, b = _repeat(p, 1.4)
    ch = standing(frames, s)
    depth = {"small": 0.2, "big": 0.4}[p["amplitude"]]
    _, bump = strokes(frames, a, b, p["count"])
    forward, _ = yaw_vectors(np.array(s.heading))
    ch.height -= depth * bump
    ch.root_xz -= forward * 0.12 * depth / 0.4 * bump[:, None]
    ch.spine[:, 0] += 0.5 * depth / 0.4 * bump
    for arm in (0, 1):
        set_arm(ch, arm, (-0.05, 0.0, 0.5), (0.3, -1.0, -0.1), bump)
    return ch, s


def lunge(p: dict, s: Start):
    frames, a, b = _repeat(p, 2.0)
    ch = standing(frames, s)
    side = {"left": 0, "right": 1}[p["side"]]
    phase, _ = strokes(frames, a, b, p["count"])
    forward, left = yaw_vectors(np.array(s.heading))
    # Each lunge: the lead foot steps out (0-30 %), the body sinks and rises (30-70 %), the foot returns.
    out = np.interp(phase, [0, 0.3, 0.7, 1.0], [0, 1, 1, 0])
    out = out * out * (3 - 2 * out)
    sink = np.clip(np.sin(np.pi * (phase - 0.3) / 0.4), 0, None) * ((phase > 0.3) & (phase < 0.7))
    lift = np.sin(np.pi * np.clip(phase / 0.3, 0, 1)) + np.sin(np.pi * np.clip((phase - 0.7) / 0.3, 0, 1))
    ch.toes[:, side, 0] += forward[0] * 0.7 * out
    ch.toes[:, side, 2] += forward[1] * 0.7 * out
    ch.toes[:, side, 1] += 0.12 * np.sqrt(np.clip(lift, 0, 1))
    ch.foot_pitch[:, 1 - side] += 0.6 * out  # back heel rises
    ch.root_xz += forward * 0.3 * out[:, None]
    ch.height -= (0.12 * out + 0.25 * sink)
    return ch, s


def sit_down(p: dict, s: Start):
    speed = SPEED_FACTOR[p["speed"]]
    down = frames_for(1.4 / speed)
    frames = down + frames_for(1.0)
    ch = standing(frames, s)
    w = keyed(frames, [(0, 0.0), (down, 1.0)])
    lean = keyed(frames, [(0, 0.0), (down * 0.6, 1.0), (down, 0.25), (frames - 1, 0.2)])
    _seat(ch, s, w, lean)
    return ch, Start(s.xz, s.heading, "sitting")


def stand_up(p: dict, s: Start):
    speed = SPEED_FACTOR[p["speed"]]
    up = frames_for(1.4 / speed)
    hold = frames_for(0.6)
    frames = hold + up + frames_for(0.3)
    ch = standing(frames, s)
    w = keyed(frames, [(hold, 1.0), (hold + up, 0.0)])
    lean = keyed(frames, [(0, 0.2), (hold, 0.25), (hold + up * 0.4, 1.0), (hold + up, 0.0)])
    _seat(ch, s, w, lean)
    return ch, Start(s.xz, s.heading, "standing")


def _seat(ch, s: Start, w: np.ndarray, lean: np.ndarray) -> None:
    """Lower the pelvis back onto an (unseen) chair by w in [0, 1], leaning the trunk forward by lean."""
    forward, _ = yaw_vectors(np.array(s.heading))
    ch.height = STAND_HEIGHT + (SIT_HEIGHT - STAND_HEIGHT) * w
    ch.root_xz = ch.root_xz - forward * SIT_BACK * w[:, None]
    ch.spine[:, 0] = 0.7 * lean
    for arm in (0, 1):
        set_arm(ch, arm, (0.0, -0.38, 0.28), (0.3, -0.5, -1.0), w)


def crouch(p: dict, s: Start):
    frames, a, b = _repeat({**p, "count": 1}, 1.2, hold=1.2)
    ch = standing(frames, s)
    w = envelope(frames, a + frames_for(0.6), frames - b + frames_for(0.6))
    forward, _ = yaw_vectors(np.array(s.heading))
    ch.height -= 0.42 * w
    ch.root_xz -= forward * 0.1 * w[:, None]
    ch.spine[:, 0] += 0.6 * w
    ch.foot_pitch += 0.3 * w[:, None]
    for arm in (0, 1):
        set_arm(ch, arm, (-0.02, -0.35, 0.30), (0.3, -0.5, -1.0), w)
    return ch, s


def kneel(p: dict, s: Start):
    frames, a, b = _repeat({**p, "count": 1}, 1.6, hold=1.2)
    ch = standing(frames, s)
    side = {"left": 0, "right": 1}[p["side"]]
    forward, left = yaw_vectors(np.array(s.heading))
    step = keyed(frames, [(a, 0.0), (a + frames_for(0.5), 1.0), (b - frames_for(0.5), 1.0), (b, 0.0)])
    down = keyed(frames, [(a + frames_for(0.3), 0.0), (a + frames_for(1.0), 1.0), (b - frames_for(1.0), 1.0),
                          (b - frames_for(0.3), 0.0)])
    ch.toes[:, side, 0] -= forward[0] * 0.45 * step
    ch.toes[:, side, 2] -= forward[1] * 0.45 * step
    ch.toes[:, side, 1] += 0.1 * np.sin(np.pi * step) * (1 - down)
    ch.foot_pitch[:, side] += 1.1 * down
    ch.height -= 0.40 * down
    ch.root_xz -= forward * 0.2 * step[:, None]
    ch.spine[:, 0] += 0.1 * down
    return ch, s


def bow(p: dict, s: Start):
    frames, a, b = _repeat({**p, "count": 1}, 1.2, hold=0.6)
    ch = standing(frames, s)
    depth = {"small": 0.45, "big": 0.9}[p["amplitude"]]
    w = envelope(frames, a + frames_for(0.5), frames - b + frames_for(0.5))
    forward, _ = yaw_vectors(np.array(s.heading))
    ch.pelvis_pitch += 0.35 * depth * w
    ch.spine[:, 0] += 0.65 * depth * w
    ch.root_xz -= forward * 0.06 * depth * w[:, None]
    return ch, s


def touch_toes(p: dict, s: Start):
    frames, a, b = _repeat(p, 2.0)
    ch = standing(frames, s)
    _, bump = strokes(frames, a, b, p["count"])
    forward, _ = yaw_vectors(np.array(s.heading))
    bend = 1.75 * bump
    ch.pelvis_pitch += 0.7 * bump
    ch.spine[:, 0] += bend - 0.7 * bump
    ch.root_xz -= forward * 0.15 * bump[:, None]
    # Hang the arms straight down to the floor, expressed in the bent chest frame.
    down = np.stack([np.zeros(frames), -np.cos(bend), np.sin(bend)], -1) * 0.5
    for arm in (0, 1):
        set_arm(ch, arm, down + np.array([-0.08, 0.0, 0.0]), (0.3, 0.0, -1.0), bump)
    return ch, s


def jumping_jacks(p: dict, s: Start):
    ch, end, air = _jumps(s, 2 * p["count"], 0.12, spread=(0.0, 0.25), crouch=0.08, pause=0.05)
    wide = np.zeros(ch.frames)
    for k, (takeoff, land) in enumerate(air):
        target, prev = (1.0, 0.0) if k % 2 == 0 else (0.0, 1.0)
        frac = np.clip((np.arange(ch.frames) - takeoff + 2) / max(land - takeoff + 4, 1), 0, 1)
        wide = np.where(np.arange(ch.frames) >= takeoff - 2, prev + (target - prev) * frac, wide)
    up_pose = np.array([0.22, 0.42, 0.02])
    down_pose = np.array([0.16, -0.45, 0.03])
    track = down_pose + (up_pose - down_pose) * (wide * wide * (3 - 2 * wide))[:, None]
    for arm in (0, 1):
        set_arm(ch, arm, track, (0.0, -0.2, -1.0), np.ones(ch.frames))
    return ch, end


WHOLE_BODY = [
    Primitive("kick", "whole_body", {"side": ("left", "right"), "direction": ("front", "side"),
                                     "count": (1, 2, 3), "height": ("low", "high")}, kick),
    Primitive("squat", "whole_body", {"count": (1, 2, 3, 4), "amplitude": ("small", "big"),
                                      "speed": ("slow", "normal", "fast")}, squat),
    Primitive("lunge", "whole_body", {"side": ("left", "right"), "count": (1, 2)}, lunge),
    Primitive("sit_down", "whole_body", {"speed": ("slow", "normal")}, sit_down, end_posture="sitting"),
    Primitive("stand_up", "whole_body", {"speed": ("slow", "normal")}, stand_up, start_posture="sitting"),
    Primitive("crouch", "whole_body", {}, crouch),
    Primitive("kneel", "whole_body", {"side": ("left", "right")}, kneel),
    Primitive("bow", "whole_body", {"amplitude": ("small", "big")}, bow),
    Primitive("touch_toes", "whole_body", {"count": (1, 2)}, touch_toes),
    Primitive("jumping_jacks", "whole_body", {"count": (1, 2, 3, 4), "speed": ("normal", "fast")}, jumping_jacks),
]
