"""The procedural corpus: determinism, layout, labels, captions and the acceptance figures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from training.corpus import Label, describe_difference, generate_clip
from training.corpus import quality
from training.corpus.body import FPS
from training.corpus.captions import tokens
from training.corpus.labels import Action, Segment
from training.corpus.writer import write_corpus


def test_same_seed_same_clip_and_different_seed_differs():
    a = generate_clip(np.random.default_rng(3))
    b = generate_clip(np.random.default_rng(3))
    c = generate_clip(np.random.default_rng(4))
    assert np.array_equal(a.joints, b.joints) and a.captions == b.captions
    assert a.label.to_dict() != c.label.to_dict()


def test_walk_keeps_bones_and_feet_planted():
    label = Label([Segment(Action("walk", {"speed": "normal", "duration": 4}))])
    clip = generate_clip(np.random.default_rng(0), label)
    assert quality.bone_length_drift(clip.joints) < 1e-3
    skating, stance = quality.foot_skating(clip.joints, FPS)
    assert stance > 50 and skating / stance < 0.02
    grounded = clip.joints[:, [10, 11], 1].min(axis=1) < 0.01  # some toe touches the floor
    assert grounded.mean() > 0.9
    travelled = np.linalg.norm(clip.joints[-1, 0, [0, 2]] - clip.joints[0, 0, [0, 2]])
    assert travelled > 2.0  # a 4-second walk goes somewhere


def test_wave_side_is_the_side_that_moves():
    label = Label([Segment(Action("wave", {"side": "left", "count": 3, "amplitude": "big", "speed": "normal"}))])
    j = generate_clip(np.random.default_rng(0), label).joints
    left_rise = j[:, 20, 1].max() - j[0, 20, 1]
    right_rise = j[:, 21, 1].max() - j[0, 21, 1]
    assert left_rise > 0.5 and right_rise < 0.05  # the left wrist goes above the head, the right stays down


def test_describe_difference_names_side_count_and_action():
    a = Label([Segment(Action("wave", {"side": "left", "count": 2}))])
    b = Label([Segment(Action("wave", {"side": "right", "count": 2}))])
    c = Label([Segment(Action("clap", {"count": 2}))])
    assert describe_difference(a, a) == []
    (side,) = describe_difference(a, b)
    assert "side left" in side and "side right" in side
    assert "'wave'" in describe_difference(a, c)[0] and "'clap'" in describe_difference(a, c)[0]


def test_unknown_action_in_a_label_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown action 'moonwalk'"):
        Label.from_dict({"segments": [{"action": "moonwalk", "params": {}}]})


def test_bad_parameters_are_clear_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="wave side must be one of left, right, both, got 'up'"):
        generate_clip(rng, Label([Segment(Action("wave", {"side": "up", "count": 2, "amplitude": "small",
                                                          "speed": "normal"}))]))
    with pytest.raises(ValueError, match="stand_up.*needs a sitting start"):
        generate_clip(rng, Label([Segment(Action("walk", {"speed": "slow", "duration": 2})),
                                  Segment(Action("stand_up", {"speed": "slow"}))]))


def test_captions_are_tagged_without_unknown_words():
    rng = np.random.default_rng(1)
    for _ in range(40):
        for cap in generate_clip(rng).captions:
            assert "/X" not in tokens(cap), cap


def test_corpus_command_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        write_corpus(tmp_path, 2, 0, workers=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "c"
    write_corpus(out, 2000, seed=0, workers=2)
    return out


@pytest.mark.slow
def test_corpus_layout_and_acceptance_figures(corpus):
    from training.corpus.stats import corpus_stats

    ids = [json.loads(line)["id"] for line in (corpus / "labels.jsonl").read_text().splitlines()]
    assert len(ids) == 2000
    split_ids = sum(((corpus / f"{s}.txt").read_text().split() for s in ("train", "val", "test")), [])
    assert sorted(split_ids) == sorted(ids)
    assert np.load(corpus / "Mean.npy").shape == (263,) and (np.load(corpus / "Std.npy") > 0).all()
    line = (corpus / "texts" / f"{ids[0]}.txt").read_text().splitlines()[0]
    caption, toks, start, end = line.split("#")
    assert caption and "/" in toks and (start, end) == ("0.0", "0.0")
    s = corpus_stats(corpus)
    assert s.max_bone_drift_m < 1e-3
    assert s.max_floor_penetration_m < 0.01
    assert s.locomotion_skating_ratio < 0.02
    assert s.backward_knee_frames == 0 and s.backward_elbow_frames == 0
    assert s.max_joint_step_m < 0.3
    assert s.missing_primitives == [] and s.missing_modifiers == []
    assert s.mean_distinct_captions >= 3
    assert s.max_roundtrip_error_m < 1e-4


def test_corpus_is_the_same_whatever_the_number_of_workers(tmp_path):
    one = write_corpus(tmp_path / "one", 6, seed=9, workers=1)
    two = write_corpus(tmp_path / "two", 6, seed=9, workers=2)
    for rel in ("labels.jsonl", "train.txt", "test.txt", "texts/000003.txt"):
        assert (one / rel).read_text() == (two / rel).read_text()
    assert np.array_equal(np.load(one / "new_joint_vecs/000005.npy"), np.load(two / "new_joint_vecs/000005.npy"))
    assert np.array_equal(np.load(one / "Mean.npy"), np.load(two / "Mean.npy"))


def test_corpus_command_reports_bad_clip_count(tmp_path):
    import argparse

    from training.cli import corpus_commands

    parser = argparse.ArgumentParser()
    corpus_commands.register(parser.add_subparsers())
    args = parser.parse_args(["corpus", "--out", str(tmp_path / "c"), "--clips", "0"])
    with pytest.raises(ValueError, match="--clips must be at least 1"):
        args.func(args)
