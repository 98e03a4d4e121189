"""Upper-body actions: arms (and a little spine and head) over standing feet. They also layer onto
locomotion, where only their arm, spine-twist and head channels are used.

Arm poses are authored for the LEFT arm as (wrist relative to the shoulder, elbow pole), chest frame:
+X outward, +Y up, +Z forward; `set_arm` mirrors them for the right arm."""
from __future__ import annotations

import numpy as np

from ..curves import envelope, frames_for, strokes
from .base import SIDE_INDEX, SPEED_FACTOR, Primitive, Start, keyed, set_arm, standing

WAVE = {"small": ((0.30, 0.33, 0.10), (1.0, -0.7, -0.3), 0.10), "big": ((0.15, 0.46, 0.08), (1.0, -0.2, -0.2), 0.18)}
RAISE = {"up": ((0.05, 0.50, 0.05), (1.0, 0.0, -0.3)), "forward": ((0.0, 0.02, 0.50), (0.3, -1.0, -0.1)),
         "sideways": ((0.50, 0.02, 0.0), (0.0, -0.3, -1.0))}
POINT = {"forward": ((-0.03, 0.05, 0.50), (0.3, -1.0, -0.1)), "up": ((0.05, 0.50, 0.08), (1.0, 0.0, -0.3)),
         "side": ((0.50, 0.05, 0.05), (0.0, -0.3, -1.0))}
GUARD = ((-0.08, -0.14, 0.18), (0.4, -1.0, -0.3))


def _frames(p: dict, strokes_seconds: float, hold: float = 0.0) -> tuple[int, int, int]:
    """(total frames, pose-in frames, pose-out frames) for the speed and stroke count in `p`."""
    speed = SPEED_FACTOR[p.get("speed", "normal")]
    move = frames_for(0.6)  # reaching a pose takes the same time at any speed; speed sets the strokes
    body = frames_for(strokes_seconds * p.get("count", 1) / speed + hold)
    return move + body + move + 2, move, move


def _arms(p: dict) -> tuple[int, ...]:
    return SIDE_INDEX[p.get("side", "both")]


def wave(p: dict, s: Start):
    frames, rise, fall = _frames(p, 0.5)
    ch = standing(frames, s)
    wrist, pole, amp = WAVE[p["amplitude"]]
    w = envelope(frames, rise, fall)
    _, bump = strokes(frames, rise, frames - fall, p["count"])
    phase, _ = strokes(frames, rise, frames - fall, p["count"])
    sway = np.sin(2 * np.pi * phase) * amp * (bump > 0)
    for side in _arms(p):
        track = np.repeat(np.array(wrist)[None], frames, 0)
        track[:, 0] += sway
        set_arm(ch, side, track, pole, w)
    return ch, s


def raise_arms(p: dict, s: Start):
    frames, rise, fall = _frames({**p, "count": 1}, 0.6, hold=1.0)
    ch = standing(frames, s)
    wrist, pole = RAISE[p["direction"]]
    for side in _arms(p):
        set_arm(ch, side, wrist, pole, envelope(frames, rise, fall))
    return ch, s


def clap(p: dict, s: Start):
    frames, rise, fall = _frames(p, 0.45)
    ch = standing(frames, s)
    _, bump = strokes(frames, rise, frames - fall, p["count"])
    apart, together = np.array([0.05, -0.12, 0.30]), np.array([-0.155, -0.12, 0.33])
    track = together + (apart - together) * (1 - bump[:, None])
    for side in (0, 1):
        set_arm(ch, side, track, (0.6, -1.0, -0.3), envelope(frames, rise, fall))
    return ch, s


def punch(p: dict, s: Start):
    arms = _arms(p)
    frames, rise, fall = _frames({**p, "count": p["count"] * len(arms)}, 0.5)  # `count` punches per arm
    ch = standing(frames, s)
    strike = np.array([-0.1, 0.02, 0.50])
    guard = np.array(GUARD[0])
    for k, side in enumerate(arms):
        # With both arms the fists alternate: each arm throws every other punch.
        count = p["count"] if len(arms) == 1 else 2 * p["count"]
        _, bump = strokes(frames, rise, frames - fall, count)
        if len(arms) == 2:
            phase = np.floor((np.arange(frames) - rise) / max(frames - rise - fall, 1) * count)
            bump = bump * ((phase % 2) == k)
        track = guard + (strike - guard) * bump[:, None]
        set_arm(ch, side, track, GUARD[1], envelope(frames, rise, fall))
    return ch, s


def point(p: dict, s: Start):
    frames, rise, fall = _frames({**p, "count": 1}, 0.4, hold=1.0)
    ch = standing(frames, s)
    wrist, pole = POINT[p["direction"]]
    set_arm(ch, SIDE_INDEX[p["side"]][0], wrist, pole, envelope(frames, rise, fall))
    return ch, s


def _to_head(frames: int, rise: int, fall: int, target) -> np.ndarray:
    """A wrist path from rest up to `target` near the head and back, passing in front of the body so the
    elbow never folds through the shoulder."""
    rest, front = (0.06, -0.48, 0.06), (0.10, -0.05, 0.32)
    return keyed(frames, [(0, rest), (rise * 0.5, front), (rise, target), (frames - 1 - fall, target),
                          (frames - 1 - fall * 0.5, front), (frames - 1, rest)])


def salute(p: dict, s: Start):
    frames, rise, fall = _frames({**p, "count": 1, "speed": "slow"}, 0.3, hold=1.2)
    ch = standing(frames, s)
    track = _to_head(frames, rise, fall, (-0.17, 0.26, 0.12))
    set_arm(ch, SIDE_INDEX[p["side"]][0], track, (1.0, -0.3, -0.3), np.ones(frames))
    return ch, s


def stretch_up(p: dict, s: Start):
    frames, rise, fall = _frames({**p, "count": 1}, 0.3, hold=1.5)
    ch = standing(frames, s)
    w = envelope(frames, rise, fall)
    for side in (0, 1):
        set_arm(ch, side, (0.03, 0.50, 0.02), (1.0, 0.0, 0.0), w)
    ch.spine[:, 0] -= 0.12 * w
    ch.neck[:, 0] -= 0.2 * w
    return ch, s


def arm_circles(p: dict, s: Start):
    frames, rise, fall = _frames(p, 0.7)
    ch = standing(frames, s)
    radius = {"small": 0.1, "big": 0.22}[p["amplitude"]]
    phase, _ = strokes(frames, rise, frames - fall, p["count"])
    angle = 2 * np.pi * phase * (1 if p["direction"] == "forward" else -1)
    track = np.stack([np.full(frames, 0.46), radius * np.sin(angle), radius * (1 - np.cos(angle)) * 0.5], -1)
    for side in (0, 1):
        set_arm(ch, side, track, (0.0, -0.3, -1.0), envelope(frames, rise, fall))
    return ch, s


def throw(p: dict, s: Start):
    frames, rise, fall = _frames(p, 1.0)
    ch = standing(frames, s)
    side = SIDE_INDEX[p["side"]][0]
    t0, t1 = rise, frames - fall
    keys, twist = [(0, (0.06, -0.48, 0.06))], [(0, 0.0)]
    for k in range(p["count"]):
        a = t0 + (t1 - t0) * k / p["count"]
        span = (t1 - t0) / p["count"]
        keys += [(a + 0.25 * span, (0.32, -0.15, -0.12)), (a + 0.45 * span, (0.22, 0.18, -0.12)), (a + 0.7 * span, (-0.05, 0.18, 0.46)),
                 (a + span, (0.0, -0.2, 0.3))]
        turn = 0.35 if side == 1 else -0.35  # wind up by turning the throwing shoulder back
        twist += [(a + 0.45 * span, turn), (a + 0.7 * span, -0.6 * turn), (a + span, 0.0)]
    keys.append((frames - 1, (0.06, -0.48, 0.06)))
    twist.append((frames - 1, 0.0))
    set_arm(ch, side, keyed(frames, keys), (0.6, -0.8, -0.5), np.ones(frames))
    ch.spine[:, 2] += keyed(frames, twist)
    return ch, s


def reach_forward(p: dict, s: Start):
    frames, rise, fall = _frames({**p, "count": 1}, 0.5, hold=0.8)
    ch = standing(frames, s)
    w = envelope(frames, rise, fall)
    for side in _arms(p):
        set_arm(ch, side, (-0.02, -0.08, 0.50), (0.3, -1.0, -0.1), w)
    ch.spine[:, 0] += 0.35 * w
    return ch, s


def shrug(p: dict, s: Start):
    frames, rise, fall = _frames(p, 0.8)
    ch = standing(frames, s)
    _, bump = strokes(frames, rise // 2, frames - fall // 2, p["count"])
    ch.shrug += 0.35 * bump[:, None]
    for side in (0, 1):
        set_arm(ch, side, (0.14, -0.36, 0.16), (0.3, -0.3, -1.0), bump)
    return ch, s


def _hold_pose(p: dict, s: Start, pose: dict[int, tuple], hold: float):
    frames, rise, fall = _frames({**p, "count": 1}, 0.4, hold=hold)
    ch = standing(frames, s)
    for side, (wrist, pole) in pose.items():
        set_arm(ch, side, wrist, pole, envelope(frames, rise, fall))
    return ch, s


def hands_on_hips(p: dict, s: Start):
    pose = ((-0.01, -0.40, -0.03), (0.6, -0.2, -0.8))
    return _hold_pose(p, s, {0: pose, 1: pose}, 1.5)


def cross_arms(p: dict, s: Start):
    return _hold_pose(p, s, {0: ((-0.30, -0.22, 0.20), (0.7, -1.0, -0.2)),
                             1: ((-0.30, -0.18, 0.24), (0.7, -1.0, -0.2))}, 1.5)


def scratch_head(p: dict, s: Start):
    frames, rise, fall = _frames({**p, "speed": "slow"}, 0.35, hold=0.4)
    ch = standing(frames, s)
    _, bump = strokes(frames, rise, frames - fall, p["count"] * 2)
    track = _to_head(frames, rise, fall, (-0.12, 0.27, 0.02))
    track[:, 2] += 0.04 * bump
    set_arm(ch, SIDE_INDEX[p["side"]][0], track, (1.0, -0.3, -0.3), np.ones(frames))
    ch.neck[:, 0] += 0.15 * envelope(frames, rise, fall)
    return ch, s


def drink(p: dict, s: Start):
    frames, rise, fall = _frames({**p, "count": 1}, 0.5, hold=1.2)
    ch = standing(frames, s)
    w = envelope(frames, rise, fall)
    set_arm(ch, SIDE_INDEX[p["side"]][0], (-0.13, 0.10, 0.15), (0.3, -1.0, 0.0), w)
    ch.neck[:, 0] -= 0.35 * w
    return ch, s


ONE_ARM = ("left", "right")
ANY_ARM = ("left", "right", "both")
COUNT = (1, 2, 3, 4)
UPPER_BODY = [
    Primitive("wave", "upper_body", {"side": ANY_ARM, "count": (2, 3, 4), "amplitude": ("small", "big"),
                                     "speed": ("slow", "normal", "fast")}, wave),
    Primitive("raise_arms", "upper_body", {"side": ANY_ARM, "direction": ("up", "forward", "sideways")}, raise_arms),
    Primitive("clap", "upper_body", {"count": COUNT, "speed": ("slow", "normal", "fast")}, clap),
    Primitive("punch", "upper_body", {"side": ANY_ARM, "count": COUNT, "speed": ("normal", "fast")}, punch),
    Primitive("point", "upper_body", {"side": ONE_ARM, "direction": ("forward", "up", "side")}, point),
    Primitive("salute", "upper_body", {"side": ONE_ARM}, salute),
    Primitive("stretch_up", "upper_body", {}, stretch_up),
    Primitive("arm_circles", "upper_body", {"count": COUNT, "direction": ("forward", "backward"),
                                            "amplitude": ("small", "big")}, arm_circles),
    Primitive("throw", "upper_body", {"side": ONE_ARM, "count": (1, 2)}, throw),
    Primitive("reach_forward", "upper_body", {"side": ANY_ARM}, reach_forward),
    Primitive("shrug", "upper_body", {"count": (1, 2, 3)}, shrug),
    Primitive("hands_on_hips", "upper_body", {}, hands_on_hips),
    Primitive("cross_arms", "upper_body", {}, cross_arms),
    Primitive("scratch_head", "upper_body", {"side": ONE_ARM, "count": (1, 2, 3)}, scratch_head),
    Primitive("drink", "upper_body", {"side": ONE_ARM}, drink),
]
