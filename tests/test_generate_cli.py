"""`irg-motion generate` end to end in process, on a tiny fitted model folder and (slow) on the built-in model."""
from __future__ import annotations

import builtins

import numpy as np
import pytest

from backend.cli.main import main
from backend.models.loader import BUILTIN_DIR, missing_files
from backend.motion.io import load_motion
from training.llm.tiny import make_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny")))


def test_generate_writes_final_joints_and_every_round(model_dir, tmp_path, capsys):
    out = tmp_path / "jump.npz"
    code = main(["generate", "a person jumps", "--model", model_dir, "--rounds", "3", "--seconds", "1",
                 "--seed", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "round 1" in printed and "the person walks in a circle." in printed
    motion = load_motion(out)
    assert len(motion.rounds) >= 1 and motion.text == "a person jumps"
    assert motion.rounds[0].instruction == "the person should jump higher."
    assert np.array_equal(motion.joints, motion.rounds[-1].joints) and motion.joints.shape == (20, 22, 3)
    assert all(len(r.codes) == 5 for r in motion.rounds)


def test_step_mode_accepts_on_the_terminal(model_dir, tmp_path, monkeypatch, capsys):
    answers = iter(["a"])
    monkeypatch.setattr(builtins, "input", lambda *a: next(answers))
    out = tmp_path / "step.npz"
    assert main(["generate", "a person jumps", "--model", model_dir, "--mode", "step", "--seconds", "1",
                 "--out", str(out)]) == 0
    assert len(load_motion(out).rounds) == 1


@pytest.mark.parametrize("argv, message", [
    (["   "], "empty"),
    (["a person jumps", "--seconds", "0"], "seconds must be between"),
    (["a person jumps", "--seconds", "600"], "seconds must be between"),
    (["a person jumps", "--rounds", "0"], "max_rounds"),
])
def test_bad_input_is_one_readable_error(model_dir, tmp_path, capsys, argv, message):
    code = main(["generate", *argv, "--model", model_dir, "--out", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()


def test_very_long_prompt_is_truncated_with_a_note(model_dir, tmp_path, capsys):
    prompt = ("a person jumps " * 700)[:10_000]
    code = main(["generate", prompt, "--model", model_dir, "--seconds", "1", "--out", str(tmp_path / "x.npz")])
    captured = capsys.readouterr()
    # the tiny model only knows its one prompt, so its rounds may fail; the note and a clean exit are what count
    assert "10000 characters" in captured.out and "Traceback" not in captured.err and code in (0, 2)


def test_missing_model_folder_is_named(tmp_path, capsys):
    assert main(["generate", "a person jumps", "--model", str(tmp_path), "--out", str(tmp_path / "x.npz")]) == 2
    assert "llm/model.safetensors" in capsys.readouterr().err


@pytest.mark.slow
def test_builtin_generate(tmp_path, capsys):
    if missing_files(BUILTIN_DIR):
        pytest.skip("the built-in model is not trained in this checkout")
    out = tmp_path / "wave.npz"
    assert main(["generate", "a person waves with the right hand", "--rounds", "3", "--seconds", "4", "--seed", "1",
                 "--out", str(out)]) == 0
    motion = load_motion(out)
    assert motion.joints.shape == (80, 22, 3) and motion.rounds and motion.rounds[0].assessment


def test_mp4_out_writes_a_preview(model_dir, tmp_path):
    out = tmp_path / "jump.mp4"
    assert main(["generate", "a person jumps", "--model", model_dir, "--seconds", "1", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
