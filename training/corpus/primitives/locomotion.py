"""Locomotion: walking styles, turns, spins, hops, skips, jumps and stairs."""
from __future__ import annotations

import numpy as np

from ..body import FPS, STAND_HEIGHT, Channels, standing_toes, yaw_vectors
from ..curves import envelope, frames_for, smoothstep
from ..gait import GaitStyle, step_feet
from .base import SPEED_FACTOR, Primitive, Start, keyed, standing

DIRECTION_LOCAL = {"forward": (1.0, 0.0), "backward": (-1.0, 0.0), "left": (0.0, 1.0), "right": (0.0, -1.0)}
TURN_SIGN = {"left": 1.0, "right": -1.0}
GRAVITY = 9.81


def _path(start: Start, frames: int, move: tuple[int, int], displacement_local=(0.0, 0.0), turn: float = 0.0,
          circle_radius: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Root path: accelerates, cruises and stops inside frames [move[0], move[1]); returns (root_xz, heading,
    progress 0..1). Displacement is (forward, left) in the starting frame; with circle_radius the path
    curves by `turn`."""
    length = move[1] - move[0]
    ease = min(frames_for(0.5), length // 3)
    speed = envelope(length, ease, ease)
    progress = np.zeros(frames)
    progress[move[0]:move[1]] = np.cumsum(speed) / speed.sum()
    progress[move[1]:] = 1.0
    heading = start.heading + turn * progress
    forward0, left0 = yaw_vectors(np.array(start.heading))
    if circle_radius:
        # Walk along an arc: the centre lies to the side the walker turns to.
        sign = np.sign(turn)
        centre = np.asarray(start.xz) + left0 * sign * circle_radius
        angle = turn * progress
        rel = -left0 * sign * circle_radius
        cos, sin = np.cos(angle), np.sin(angle)
        # rotate rel about the vertical axis by `angle` (x, z plane, positive = to the left)
        x = rel[0] * cos + rel[1] * sin
        z = -rel[0] * sin + rel[1] * cos
        root = centre + np.stack([x, z], -1)
    else:
        disp = forward0 * displacement_local[0] + left0 * displacement_local[1]
        root = np.asarray(start.xz) + progress[:, None] * disp
    return root, heading, progress


def _locomote(start: Start, seconds: float, style: GaitStyle, displacement_local=(0.0, 0.0), turn: float = 0.0,
              circle_radius: float = 0.0, crouch: float = 0.0, lean: float = 0.0, arm_swing: float = 0.5,
              rise: float = 0.0) -> tuple[Channels, Start]:
    lead, tail = frames_for(0.15), frames_for(0.55)
    frames = lead + frames_for(seconds) + tail
    # Displacements are speed x seconds; shrink them by the time lost accelerating and stopping so
    # the cruise speed is the gait's speed, however short the walk.
    cruise = 1.0 - min(frames_for(0.5), frames_for(seconds) // 3) / frames_for(seconds)
    displacement_local = tuple(d * cruise for d in displacement_local)
    root, heading, progress = _path(start, frames, (lead, frames - tail), displacement_local, turn, circle_radius)
    feet = step_feet(root, heading, style, rise=rise)
    ch = standing(frames, start)
    ch.root_xz, ch.heading = root, heading
    ch.toes, ch.foot_yaw, ch.foot_pitch = feet.toes, feet.yaw, feet.pitch
    active = envelope(frames, lead + frames_for(0.3), tail)
    # On stairs the last two steps land side by side on the top (or bottom) stair.
    ch.height = STAND_HEIGHT - crouch * active + rise * (feet.steps - 2) * progress
    ch.spine[:, 0] = lean * active
    # Arms swing against the legs: each wrist follows how far the opposite foot is ahead of the pelvis.
    forward, _ = yaw_vectors(heading)
    for s in range(2):
        ahead = np.sum((feet.toes[:, 1 - s, [0, 2]] - root) * forward, -1)
        ch.wrists[:, s, 2] += np.clip(arm_swing * ahead, -0.35, 0.45)
        ch.wrists[:, s, 1] += 0.3 * np.clip(arm_swing * ahead, 0, 0.45) ** 2 / 0.45
    end = Start(xz=tuple(root[-1]), heading=float(heading[-1]))
    return ch, end


def _gait_seconds(params: dict) -> float:
    return float(params.get("duration", 3))


def walk(p: dict, s: Start):
    f = SPEED_FACTOR[p["speed"]]
    sec = _gait_seconds(p)
    return _locomote(s, sec, GaitStyle(cadence=1.8 * f**0.5, duty=0.5), (1.05 * min(f, 1.1) * sec, 0.0),
                     lean=0.03 * f)


def run(p: dict, s: Start):
    f = SPEED_FACTOR[p["speed"]]
    sec = _gait_seconds(p)
    return _locomote(s, sec, GaitStyle(cadence=2.6 * f**0.3, duty=0.3, clearance=0.18), (1.35 * min(f, 1.2) * sec, 0.0),
                     crouch=0.06, lean=0.2, arm_swing=0.8)


def jog(p: dict, s: Start):
    f = SPEED_FACTOR[p["speed"]]
    sec = _gait_seconds(p)
    return _locomote(s, sec, GaitStyle(cadence=2.4 * f**0.3, duty=0.4, clearance=0.14), (1.4 * f * sec, 0.0),
                     crouch=0.04, lean=0.12, arm_swing=0.7)


def sneak(p: dict, s: Start):
    sec = _gait_seconds(p)
    ch, end = _locomote(s, sec, GaitStyle(cadence=1.3, clearance=0.09, widen=0.04), (0.5 * sec, 0.0),
                        crouch=0.16, lean=0.35, arm_swing=0.2)
    return ch, end


def tiptoe(p: dict, s: Start):
    sec = _gait_seconds(p)
    return _locomote(s, sec, GaitStyle(cadence=1.8, clearance=0.08, heel_raise=0.6), (0.45 * sec, 0.0),
                     arm_swing=0.2)


def march(p: dict, s: Start):
    sec = _gait_seconds(p)
    knee = {"small": 0.22, "big": 0.36}[p["amplitude"]]
    return _locomote(s, sec, GaitStyle(cadence=1.7, duty=0.55, clearance=knee), (0.9 * sec, 0.0), arm_swing=1.0)


def side_step(p: dict, s: Start):
    steps = 2 * p["count"]
    style = GaitStyle(cadence=1.8, clearance=0.08, widen=0.05)
    lateral = DIRECTION_LOCAL[p["direction"]][1] * 0.28 * p["count"]
    return _locomote(s, steps / style.cadence, style, (0.0, lateral), arm_swing=0.0)


def walk_backward(p: dict, s: Start):
    f = SPEED_FACTOR[p["speed"]]
    sec = _gait_seconds(p)
    return _locomote(s, sec, GaitStyle(cadence=1.6 * f**0.5, clearance=0.1), (-0.6 * f * sec, 0.0), arm_swing=0.3)


def walk_circle(p: dict, s: Start):
    radius = {"small": 0.8, "big": 1.4}[p["amplitude"]]
    f = min(SPEED_FACTOR[p["speed"]], 1.2)
    turn = TURN_SIGN[p["direction"]] * 2 * np.pi
    sec = 2 * np.pi * radius / (0.8 * f)
    return _locomote(s, sec, GaitStyle(cadence=1.8 * f**0.5, duty=0.5), turn=turn, circle_radius=radius)


def turn(p: dict, s: Start):
    angle = np.radians(p["angle"]) * TURN_SIGN[p["direction"]]
    sec = 0.6 + abs(angle) / np.pi * 1.2
    return _locomote(s, sec, GaitStyle(cadence=2.0, clearance=0.07), turn=angle, arm_swing=0.0)


def spin(p: dict, s: Start):
    angle = 2 * np.pi * p["count"] * TURN_SIGN[p["direction"]]
    sec = 1.2 * p["count"]
    ch, end = _locomote(s, sec, GaitStyle(cadence=3.2, clearance=0.07), turn=angle, arm_swing=0.0)
    lift = envelope(ch.frames, frames_for(0.3), frames_for(0.3))
    for side in range(2):  # arms out for balance
        ch.wrists[:, side] += np.array([0.25 * (1 - 2 * side), 0.3, 0.05]) * lift[:, None]
    return ch, end


def climb_stairs(p: dict, s: Start):
    steps = p["steps"]
    rise = 0.16 if p["direction"] == "up" else -0.16
    style = GaitStyle(cadence=1.5, clearance=0.1)
    ch, end = _locomote(s, steps / style.cadence, style, (0.3 * steps, 0.0), lean=0.15 if rise > 0 else 0.05,
                        arm_swing=0.2, rise=rise)
    return ch, Start(end.xz, end.heading, floor=float(ch.toes[-1, :, 1].min()))  # both feet on the last stair


# --- airborne actions -----------------------------------------------------------------------------

def _jumps(start: Start, count: int, height: float, displacement_local=(0.0, 0.0), one_foot: int | None = None,
           alternate: bool = False, spread: tuple[float, float] | None = None, crouch: float = 0.14,
           pause: float = 0.15) -> tuple[Channels, Start, list[tuple[int, int]]]:
    """`count` jumps: dip, take off, fly ballistically, land and absorb. With one_foot the other leg is
    held up (hops); alternate swaps the hopping foot each time (skipping); spread alternates narrow and
    wide landings (jumping jacks). Returns the channels, the end and each jump's (take-off, landing) frame."""
    flight = 2 * np.sqrt(2 * height / GRAVITY)
    dip, push, absorb = frames_for(0.3), frames_for(0.12), frames_for(0.25)
    fly = max(frames_for(flight), 3)
    one = dip + push + fly + absorb + frames_for(pause)
    frames = frames_for(0.2) + count * one + frames_for(0.25)
    ch = standing(frames, start)
    forward, left = yaw_vectors(np.array(start.heading))
    step = forward * displacement_local[0] / count + left * displacement_local[1] / count
    height_curve = np.full(frames, STAND_HEIGHT)
    root = np.repeat(np.asarray(start.xz, float)[None], frames, 0)
    toes = standing_toes(root, np.full(frames, start.heading))
    pitch = np.zeros((frames, 2))
    widen = np.zeros(frames)
    airborne = []
    t = np.arange(frames)
    for k in range(count):
        t0 = frames_for(0.2) + k * one
        takeoff, land = t0 + dip + push, t0 + dip + push + fly
        airborne.append((takeoff, land))
        hop = one_foot if not alternate else (one_foot + k) % 2
        # Height: dip, push back up to standing, ballistic flight, absorb on landing.
        tau = (t - takeoff) / FPS
        flying = (t >= takeoff) & (t <= land)
        v0 = GRAVITY * flight / 2
        depth = crouch * (0.6 if one_foot is not None else 1.0)
        before = (t >= t0) & (t < takeoff)
        height_curve[before] = keyed(frames, [(t0, STAND_HEIGHT), (t0 + dip, STAND_HEIGHT - depth),
                                              (takeoff, STAND_HEIGHT)])[before]
        height_curve[flying] = STAND_HEIGHT + v0 * tau[flying] - GRAVITY / 2 * tau[flying] ** 2
        after = (t > land) & (t < land + absorb + frames_for(pause))
        height_curve[after] = keyed(frames, [(land, STAND_HEIGHT), (land + absorb // 2, STAND_HEIGHT - depth * 0.7),
                                             (land + absorb, STAND_HEIGHT)])[after]
        # Travel during flight only; feet leave and land together with the pelvis.
        frac = np.clip((t - takeoff) / max(land - takeoff, 1), 0, 1)
        root = root + step[None] * smoothstep(frac)[:, None]  # eased so feet leave and land without sliding
        lift = np.clip(height_curve - STAND_HEIGHT, 0, None) * flying
        tuck = 0.08 * np.sin(np.pi * frac) * flying
        toes[flying, :, 1] = (lift + tuck)[flying, None]
        pitch[before] = np.maximum(pitch[before], 0.5 * np.clip((t[before] - t0 - dip) / max(push, 1), 0, 1)[:, None])
        pitch[flying] = 0.5 * (1 - smoothstep(frac[flying]))[:, None]
        if spread is not None:
            target, prev = (spread[1], spread[0]) if k % 2 == 0 else (spread[0], spread[1])
            widen = np.where(t >= takeoff, prev + (target - prev) * smoothstep(frac), widen)
    home_toes = standing_toes(root, np.full(frames, start.heading), widen)
    toes[..., [0, 2]] = home_toes[..., [0, 2]]
    if one_foot is not None:
        # The free foot is held up behind (hops) or in front with the knee raised (skips).
        for k, (takeoff, land) in enumerate(airborne):
            hop = one_foot if not alternate else (one_foot + k) % 2
            t0 = frames_for(0.2) + k * one
            free = 1 - hop
            release = land + absorb + frames_for(max(pause, 0.2))
            held = keyed(frames, [(t0, 0.0), (t0 + dip, 1.0), (land + absorb, 1.0), (release, 0.0)])
            held[:t0] = 0
            held[release:] = 0
            fwd = forward * (0.25 if alternate else -0.18)
            # Up first, then along, so the lifting foot never slides near the floor.
            toes[:, free, 0] += fwd[0] * held**2
            toes[:, free, 2] += fwd[1] * held**2
            toes[:, free, 1] = np.maximum(toes[:, free, 1], (0.3 if alternate else 0.22) * np.sqrt(held))
    ch.root_xz, ch.height, ch.toes, ch.foot_pitch = root, height_curve, toes, pitch
    end = Start(xz=tuple(root[-1]), heading=start.heading)
    return ch, end, airborne


JUMP_HEIGHT = {"low": 0.15, "normal": 0.25, "high": 0.4}


def jump(p: dict, s: Start):
    distance = {"in_place": (0.0, 0.0), "forward": (0.6, 0.0), "left": (0.0, 0.4), "right": (0.0, -0.4),
                "backward": (-0.4, 0.0)}[p["direction"]]
    distance = tuple(d * p["count"] for d in distance)
    ch, end, air = _jumps(s, p["count"], JUMP_HEIGHT[p["height"]], distance)
    _arms_swing_up(ch, air)
    return ch, end


def _arms_swing_up(ch: Channels, air: list[tuple[int, int]]) -> None:
    for takeoff, land in air:
        w = keyed(ch.frames, [(takeoff - 8, 0.0), (takeoff - 3, -1.0), (takeoff + 3, 1.0), (land + 5, 0.0)])
        w[: max(takeoff - 8, 0)] = 0
        w[land + 5:] = 0
        ch.wrists[:, :, 2] += 0.25 * w[:, None]
        ch.wrists[:, :, 1] += 0.15 * np.clip(w, 0, None)[:, None]


def hop(p: dict, s: Start):
    side = {"left": 0, "right": 1}[p["side"]]
    distance = (0.3 * p["count"], 0.0) if p["direction"] == "forward" else (0.0, 0.0)
    ch, end, _ = _jumps(s, p["count"], 0.1, distance, one_foot=side, pause=0.05)
    return ch, end


def skip(p: dict, s: Start):
    ch, end, air = _jumps(s, 2 * p["count"], 0.12, (0.55 * 2 * p["count"], 0.0), one_foot=0, alternate=True,
                          pause=0.0)
    return ch, end


LOCOMOTION = [
    Primitive("walk", "locomotion", {"speed": ("slow", "normal", "fast"), "duration": (2, 3, 4, 5)}, walk),
    Primitive("run", "locomotion", {"speed": ("normal", "fast"), "duration": (2, 3, 4)}, run),
    Primitive("jog", "locomotion", {"speed": ("slow", "normal"), "duration": (2, 3, 4, 5)}, jog),
    Primitive("sneak", "locomotion", {"duration": (2, 3, 4)}, sneak),
    Primitive("tiptoe", "locomotion", {"duration": (2, 3, 4)}, tiptoe),
    Primitive("march", "locomotion", {"amplitude": ("small", "big"), "duration": (2, 3, 4)}, march),
    Primitive("side_step", "locomotion", {"direction": ("left", "right"), "count": (1, 2, 3, 4)}, side_step),
    Primitive("walk_backward", "locomotion", {"speed": ("slow", "normal"), "duration": (2, 3, 4)}, walk_backward),
    Primitive("walk_circle", "locomotion", {"direction": ("left", "right"), "amplitude": ("small", "big"),
                                            "speed": ("normal", "fast")}, walk_circle),
    Primitive("turn", "locomotion", {"direction": ("left", "right"), "angle": (90, 180)}, turn),
    Primitive("spin", "locomotion", {"direction": ("left", "right"), "count": (1, 2)}, spin),
    Primitive("hop", "locomotion", {"side": ("left", "right"), "count": (1, 2, 3, 4),
                                    "direction": ("in_place", "forward")}, hop),
    Primitive("skip", "locomotion", {"count": (1, 2, 3)}, skip),
    Primitive("jump", "locomotion", {"direction": ("in_place", "forward", "left", "right", "backward"),
                                     "count": (1, 2, 3), "height": ("low", "normal", "high")}, jump),
    Primitive("climb_stairs", "locomotion", {"direction": ("up", "down"), "steps": (3, 4, 5, 6)}, climb_stairs),
]
