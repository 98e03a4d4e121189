"""Stick-figure previews: the files decode, frames show a figure, bad requests get clear errors."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from backend.cli import preview_command
from backend.motion.io import Motion, save_motion
from backend.motion.preview import STRIP_FRAMES, write_preview
from retarget.skeleton import REST_JOINTS


def _motion(frames: int = 12) -> Motion:
    joints = np.repeat((REST_JOINTS - [0, REST_JOINTS[:, 1].min(), 0])[None], frames, 0)
    joints[:, :, 0] += np.linspace(0, 0.5, frames)[:, None]  # walk sideways a little
    return Motion(joints=joints, fps=20.0, text="a person slides to the left")


def _figure_pixels(frame: np.ndarray) -> int:
    """Pixels of the bone colours (strongly blue or red), i.e. the figure, not the grid or the text."""
    r, g, b = (frame[..., k].astype(int) for k in range(3))
    return int(((b - r > 80) | (r - b > 80)).sum())


def test_mp4_decodes_with_every_frame_showing_the_figure(tmp_path):
    import imageio.v3 as iio

    out = write_preview(tmp_path / "clip.mp4", _motion(), size=160)
    frames = iio.imread(out)
    assert frames.shape[0] == 12 and frames.shape[1:3] == (160, 160)
    assert all(_figure_pixels(f) > 50 for f in frames)


def test_gif_and_png_strip(tmp_path):
    import imageio.v3 as iio

    gif = iio.imread(write_preview(tmp_path / "clip.gif", _motion(), size=128))
    assert gif.shape[0] == 12 and _figure_pixels(gif[0][..., :3]) > 20
    strip = iio.imread(write_preview(tmp_path / "clip.png", _motion(), size=128))
    assert strip.shape[:2] == (128, 128 * STRIP_FRAMES)
    assert all(_figure_pixels(strip[:, k * 128:(k + 1) * 128, :3]) > 20 for k in range(STRIP_FRAMES))


def _run_preview(argv: list[str]) -> int:
    """Parse and run `irg-motion preview` alone (main() would import every command module)."""
    parser = argparse.ArgumentParser()
    preview_command.register(parser.add_subparsers())
    args = parser.parse_args(["preview", *argv])
    return args.func(args)


def test_preview_command_and_its_errors(tmp_path):
    motion = tmp_path / "m.npz"
    save_motion(motion, _motion())
    assert _run_preview([str(motion), "--out", str(tmp_path / "x.png"), "--size", "64"]) == 0
    assert (tmp_path / "x.png").stat().st_size > 0
    with pytest.raises(ValueError, match="end in .mp4, .gif, .png"):
        _run_preview([str(motion), "--out", str(tmp_path / "x.avi")])
    with pytest.raises(ValueError, match="no such file"):
        _run_preview([str(tmp_path / "missing.npz"), "--out", str(tmp_path / "y.png")])
    with pytest.raises(ValueError, match="multiple of 16"):
        write_preview(tmp_path / "z.png", _motion(), size=100)
