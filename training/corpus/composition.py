"""Clips from labels: primitives in sequence (each starts where the last ended) with upper-body actions
layered on locomotion; and random labels to generate."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .body import FPS, Channels, solve_pose
from .curves import envelope, frames_for
from .labels import Action, Label, Segment
from .primitives import Start, all_primitives
from .primitives.base import blend_arm

MIN_SECONDS, MAX_SECONDS = 2.0, 10.0
# Locomotion an arm action can ride on, and the arm actions that can ride.
CARRIERS = ("walk", "jog", "march", "sneak", "tiptoe", "side_step", "walk_backward", "walk_circle", "run")
LAYERABLE = ("wave", "clap", "punch", "point", "raise_arms", "hands_on_hips", "cross_arms", "scratch_head",
             "drink", "shrug", "salute", "arm_circles")


def _layer(base: Channels, overlay: Channels) -> None:
    """Put the overlay's arms, shoulders and head onto the base, centred in time, faded in and out."""
    n = min(base.frames, overlay.frames)
    off_b, off_o = (base.frames - n) // 2, (overlay.frames - n) // 2
    fade = min(frames_for(0.8), n // 3)  # slow enough that a hand crossing the body stays under 0.3 m/frame
    weight = envelope(n, fade, fade)
    w = weight[:, None]
    sb, so = slice(off_b, off_b + n), slice(off_o, off_o + n)
    window = base.slice(sb)
    for side in (0, 1):
        blend_arm(window, side, overlay.wrists[so, side], overlay.elbow_poles[so, side], weight)
    base.wrists[sb], base.elbow_poles[sb] = window.wrists, window.elbow_poles
    base.shrug[sb] = base.shrug[sb] * (1 - w) + overlay.shrug[so] * w
    base.neck[sb] = base.neck[sb] * (1 - w) + overlay.neck[so] * w


def check_action(action: Action) -> None:
    """Raise ValueError naming the choices when an action or one of its parameters is unknown."""
    prims = all_primitives()
    if action.name not in prims:
        raise ValueError(f"unknown action {action.name!r}; known: {', '.join(sorted(prims))}")
    choices = prims[action.name].choices
    for key, value in action.params.items():
        if key not in choices:
            raise ValueError(f"{action.name} has no parameter {key!r}; it takes {', '.join(choices) or 'none'}")
        if value not in choices[key]:
            raise ValueError(f"{action.name} {key} must be one of {', '.join(map(str, choices[key]))}, got {value!r}")
    missing = set(choices) - set(action.params)
    if missing:
        raise ValueError(f"{action.name} needs {', '.join(sorted(missing))}")


def build_channels(label: Label) -> tuple[Channels, Label]:
    """Channels for a label, and the label with each segment's start/end and the duration filled in."""
    if not label.segments:
        raise ValueError("a label needs at least one action")
    check_action(label.segments[0].action)
    prims = all_primitives()
    state = Start(posture=prims[label.segments[0].action.name].start_posture)
    parts, timed, t, floor = [], [], 0, 0.0
    for seg in label.segments:
        for action in (seg.action, seg.overlay):
            if action is not None:
                check_action(action)
        prim = prims[seg.action.name]
        if prim.start_posture != state.posture:
            raise ValueError(f"'{seg.action.name}' needs a {prim.start_posture} start but follows a {state.posture} pose")
        ch, state = prim.build(seg.action.params, state)
        ch.toes[..., 1] += floor
        ch.height += floor
        floor += state.floor
        state = replace(state, floor=0.0)
        if seg.overlay is not None:
            over, _ = prims[seg.overlay.name].build(seg.overlay.params, Start(xz=tuple(ch.root_xz[0]), heading=float(ch.heading[0])))
            _layer(ch, over)
        parts.append(ch)
        timed.append(Segment(seg.action, seg.overlay, t / FPS, (t + ch.frames) / FPS))
        t += ch.frames
    return Channels.concat(parts), Label(timed, t / FPS)


def sample_label(rng: np.random.Generator) -> Label:
    """A random label: one to three actions, sometimes with an arm action layered on a gait."""
    prims = all_primitives()
    names = sorted(prims)
    count = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
    segments: list[Segment] = []
    posture = "standing"
    for _ in range(count):
        if posture == "sitting":
            name = "stand_up"
        else:
            name = names[int(rng.integers(len(names)))]
            while prims[name].start_posture != posture:
                name = names[int(rng.integers(len(names)))]
        prim = prims[name]
        overlay = None
        if name in CARRIERS and rng.random() < 0.35:
            arm = LAYERABLE[int(rng.integers(len(LAYERABLE)))]
            overlay = Action(arm, prims[arm].sample_params(rng))
        segments.append(Segment(Action(name, prim.sample_params(rng)), overlay))
        posture = prim.end_posture
    return Label(segments)


def render(channels: Channels) -> np.ndarray:
    """Joints (T, 22, 3) float32 with the lowest point on the floor (y = 0)."""
    joints = solve_pose(channels)
    joints[..., 1] -= joints[..., 1].min()
    return joints.astype(np.float32)
