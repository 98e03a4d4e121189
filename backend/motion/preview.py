"""Stick-figure previews of a joint sequence: an .mp4 or .gif animation, or a .png strip of frames.

The figure stands on a ground grid, seen by an orthographic camera (front-left, slightly above) that
follows the pelvis, with the caption on top. Left limbs are blue, right limbs red.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from retarget.skeleton import JOINT_NAMES, PARENTS

from .io import Motion, validate_joints

FORMATS = (".mp4", ".gif", ".png")
BACKGROUND, GRID, CENTRE = (250, 250, 247), (205, 205, 200), (40, 40, 40)
LEFT, RIGHT = (40, 90, 220), (215, 50, 45)
STRIP_FRAMES = 6


def _camera(azimuth: float = np.radians(30), elevation: float = np.radians(20)) -> tuple[np.ndarray, np.ndarray]:
    """Screen right and screen up axes (world) of a camera looking at the figure's front from the left."""
    view = np.array([-np.sin(azimuth) * np.cos(elevation), -np.sin(elevation), -np.cos(azimuth) * np.cos(elevation)])
    right = np.cross(view, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    return right, np.cross(right, view)


def _bone_colour(joint: int) -> tuple[int, int, int]:
    name = JOINT_NAMES[joint]
    return LEFT if name.startswith("left") else RIGHT if name.startswith("right") else CENTRE


def render_frames(joints: np.ndarray, caption: str = "", size: int = 480, fps: float = 20.0) -> list[np.ndarray]:
    """One RGB image (size, size, 3) uint8 per frame. The camera follows the pelvis; the grid (0.5 m
    squares, fixed in the world) shows the travel."""
    joints = validate_joints(joints).astype(np.float64)
    right, up = _camera()
    text_size = max(8, size // 32)
    top_margin = int(2.6 * text_size) + 8 if caption else 8
    scale = (size - top_margin - 1.5 * text_size) / 2.6  # pixels per metre: a standing figure fills two thirds
    font = ImageFont.load_default(size=text_size)
    lines = textwrap.wrap(caption, width=max(12, int(size / (0.55 * text_size))))[:2]
    ticks = np.arange(-2.0, 2.01, 0.5)
    dot = max(1.0, size / 200)
    frames = []
    for t, pose in enumerate(joints):
        root = pose[0] * np.array([1.0, 0.0, 1.0])
        centre = np.array([(root + [0, 0.9, 0]) @ right, (root + [0, 0.9, 0]) @ up])

        def project(p: np.ndarray) -> np.ndarray:
            s = np.stack([p @ right, p @ up], -1) - centre
            return np.stack([size / 2 + s[..., 0] * scale, (size + top_margin) / 2 - s[..., 1] * scale], -1)

        image = Image.new("RGB", (size, size), BACKGROUND)
        draw = ImageDraw.Draw(image)
        base = np.round(root * 2) / 2
        for k in ticks:
            for a, b in (([k, 0, -2.0], [k, 0, 2.0]), ([-2.0, 0, k], [2.0, 0, k])):
                pa, pb = project(base + np.array(a)), project(base + np.array(b))
                draw.line([tuple(pa), tuple(pb)], fill=GRID, width=1)
        shadow = project(pose * np.array([1.0, 0.0, 1.0]))
        p2 = project(pose)
        for j, parent in enumerate(PARENTS):
            if parent >= 0:
                draw.line([tuple(shadow[parent]), tuple(shadow[j])], fill=GRID, width=3)
        for j, parent in enumerate(PARENTS):
            if parent >= 0:
                draw.line([tuple(p2[parent]), tuple(p2[j])], fill=_bone_colour(j), width=max(2, size // 120))
        for x, y in p2:
            draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=CENTRE)
        for k, line in enumerate(lines):
            draw.text((6, 4 + (text_size + 4) * k), line, fill=CENTRE, font=font)
        draw.text((6, size - text_size - 6), f"{t / fps:5.2f} s", fill=CENTRE, font=font)
        frames.append(np.asarray(image))
    return frames


def write_preview(out: str | Path, motion: Motion, size: int = 480) -> Path:
    """Write an .mp4/.gif animation or a .png strip of STRIP_FRAMES frames of `motion` (its text as the
    caption); returns the path."""
    import imageio.v2 as imageio

    joints, fps, caption = motion.joints, motion.fps, motion.text
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"preview files end in {', '.join(FORMATS)}, got {out.name!r}")
    if size < 64 or size % 16:
        raise ValueError(f"--size must be a multiple of 16 and at least 64 (video codecs need it), got {size}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        picks = np.linspace(0, len(joints) - 1, STRIP_FRAMES).round().astype(int)
        frames = render_frames(joints, caption, size, fps)
        Image.fromarray(np.concatenate([frames[i] for i in picks], axis=1)).save(out)
    elif suffix == ".gif":
        imageio.mimsave(out, render_frames(joints, caption, size, fps), duration=1000.0 / fps, loop=0)
    else:
        with imageio.get_writer(out, fps=fps, codec="libx264", quality=7, pixelformat="yuv420p") as writer:
            for frame in render_frames(joints, caption, size, fps):
                writer.append_data(frame)
    return out
