"""`irg-motion evaluate`: per-round loop metrics (training/evaluate_loop.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from backend.cli.main import main
from backend.loop import LoopOptions
from backend.models.loader import load_model
from training.evaluate_loop import LoopRun, Prompt, pad_motion, round_sets, rounds_histogram, run_prompt


def test_short_motions_are_padded_with_their_last_frame():
    motion = np.arange(2 * 3, dtype=np.float32).reshape(2, 3)
    padded, was = pad_motion(motion, 4)
    assert was and padded.shape == (4, 3)
    assert (padded[:2] == motion).all() and (padded[2:] == motion[-1]).all()
    same, was = pad_motion(np.zeros((5, 3)), 4)
    assert not was and same.shape == (5, 3)


def test_round_sets_skip_garbled_rounds_and_keep_the_last_motion_as_final():
    a, b, c = (np.full((8, 2), v) for v in (1.0, 2.0, 3.0))
    runs = [LoopRun(1, [a]), LoopRun(3, [a, b, None]), LoopRun(1, [None]), LoopRun(2, [a, c])]
    sets = round_sets(runs, 3)
    assert [i for i, _ in sets["first"]] == [0, 1, 3]
    assert [(i, m[0, 0]) for i, m in sets["final"]] == [(0, 1.0), (1, 2.0), (3, 3.0)]
    assert [i for i, _ in sets["round 2"]] == [1, 3] and sets["round 3"] == []
    assert [i for i, _ in sets["first (refined)"]] == [1, 3]
    assert [m[0, 0] for _, m in sets["final (refined)"]] == [2.0, 3.0]
    assert rounds_histogram(runs, 3) == {"1": 2, "2": 1, "3": 1}


def test_each_prompt_runs_for_its_clips_duration():
    """The loop's motion is as long as the held-out clip, not the options' default length."""
    model = load_model("builtin", "cpu", cpu_threads=1)
    for seconds in (2.0, 7.6):
        prompt = Prompt("clip", "a person walks forward.", "a person walks forward.", seconds, np.zeros((1, 263)))
        run = run_prompt(model, prompt, LoopOptions(max_rounds=1), min_frames=40)
        assert abs(len(run.motions[0]) - seconds * model.fps) <= 4   # frames of the first motion, at 20 fps


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such data folder" in err and "\n" not in err
    assert main(["evaluate", "--data", str(tmp_path), "--count", "0", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--count" in err and "\n" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_evaluate_writes_per_round_json_and_plot(tmp_path, capsys):
    writer = pytest.importorskip("training.corpus.writer", reason="the procedural corpus generator is not in this checkout")
    corpus = writer.write_corpus(tmp_path / "corpus", clips=40, seed=20261125, workers=1)
    names = sorted(p.stem for p in (corpus / "new_joint_vecs").glob("*.npy"))
    (corpus / "test.txt").write_text("".join(n + "\n" for n in names))   # every clip held out: 40 test clips
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", "builtin", "--data", str(corpus), "--count", "40", "--repeats", "2",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "R-precision top-1" in printed and "rounds used" in printed

    result = json.loads((out / "loop_eval.json").read_text())
    sets = result["sets"]
    clips = result["clips"]
    assert clips >= 32 and result["repeats"] == 2 and result["prompts"] == 2 * clips
    for name in ("first", "final"):
        assert 0.0 <= sets[name]["top1"][0] <= 1.0
        assert sets[name]["top1"][0] <= sets[name]["top3"][0]
        assert sets[name]["fid"][0] >= 0.0
    # the evaluator must rank the real clips far better than chance (1/32): the pipeline pairs texts correctly
    assert sets["real clips"]["top1"][0] > 0.5
    hist = result["rounds_histogram"]
    assert sum(hist.values()) == result["prompts"]
    assert set(hist) <= {"1", "2", "3"}
    refined = sum(n for k, n in hist.items() if int(k) > 1) - result["garbled_rounds"]
    if sets["final (refined)"] is not None:   # prompts in the set, averaged over the 2 repeats
        assert sets["final (refined)"]["prompts"][0] * 2 == pytest.approx(refined, abs=result["garbled_rounds"])

    # sampled decoding: every repeat runs its own seeded loops
    assert main(["evaluate", "--model", "builtin", "--data", str(corpus), "--count", "32", "--repeats", "1",
                 "--max-rounds", "1", "--sample", "--out", str(tmp_path / "sampled")]) == 0
    sampled = json.loads((tmp_path / "sampled" / "loop_eval.json").read_text())
    assert sampled["decoding"] == "sampling" and sampled["loop_runs"] == 32

    import matplotlib.image

    image = matplotlib.image.imread(out / "loop_eval.png")
    assert image.shape[0] > 200 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05   # not blank
    assert len(np.unique(image[..., :3].reshape(-1, 3), axis=0)) > 20
