"""Stage-3 GRPO: the rewards on hand-built completions, the motion-span constraint, the prompt set against the
product's own prompt, a few real GRPO steps from the built-in model (export, resume), and the CLI's errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from backend import prompts
from backend.cli.main import main
from backend.loop import LoopOptions, LoopSession
from backend.models.loader import load_model
from training.corpus import writer
from training.evaluator import load_evaluator
from training.grpo.data import prompt_rows
from training.grpo.policy_tokens import motion_token_mask
from training.grpo.rewards import (TERMS, WORST, MotionRewards, final_codes, format_reward, is_well_formed,
                                   minmax_in_groups, motion_rounds)
from training.grpo.spans import MotionSpanCodes
from training.llm.data import read_split

ANALYSIS = "The key elements are: walks, forward."


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return writer.write_corpus(tmp_path_factory.mktemp("grpo") / "corpus", clips=30, seed=20261201, workers=1)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_model("builtin", "cpu")


@pytest.fixture(scope="module")
def gt_codes(corpus, model) -> dict[str, list[int]]:
    """The VQ codes of every train clip: the motions a perfect policy would write."""
    return {name: model.motion_tokenizer.codes_from_features(np.load(corpus / "new_joint_vecs" / f"{name}.npy"))
            for name in read_split(corpus, "train")}


def trace(*codes: list[int]) -> str:
    """A well-formed v3 response with one round per motion; the last is the goal."""
    rounds = [prompts.TraceRound(c, "the motion does 'run' but the prompt asks for 'walk'.", "do 'walk' instead.")
              for c in codes[:-1]]
    rounds.append(prompts.TraceRound(codes[-1], "The motion perfectly aligns with the goal text.", prompts.NO_REFINEMENT))
    return prompts.trace_response(ANALYSIS, rounds)


# -- format ----------------------------------------------------------------------------------------------------------
def test_format_reward_is_one_for_a_well_formed_trace_and_zero_for_broken_ones():
    good = trace([5, 6, 7], [8, 9])
    assert format_reward([], [good, trace([1]), good + "<eos>[plan]after the end"]) == [1.0, 1.0, 1.0]
    broken = [
        good.replace("</think>", ""),                                  # never closed
        good.replace(f"[analyze]{ANALYSIS}[/analyze]\n", ""),          # no analysis
        good.replace("<Motion_8><Motion_9>", ""),                      # an empty motion span
        good.replace("<Motion_8>", "<Motion_8> walk"),                 # text inside a motion span
        good.replace("\nRefinement:", " so"),                          # assessment not in its two-field form
        good.replace("[/plan]\n[assess]", "[/plan]\n"),                # a round without its assessment
        good + "[plan]one more[/plan]",                                # text after </think>
        "<think>[plan]p[/plan]\n[analyze]a[/analyze]\n[plan]p[/plan]\n</think>",   # no motion at all
        "",
    ]
    assert format_reward([], broken) == [0.0] * len(broken)


def test_rounds_count_generate_blocks_with_a_usable_motion():
    logged = {}
    completions = [trace([1, 2], [3], [4, 5]), trace([7]), "no trace at all"]
    format_reward([], completions, log_metric=logged.__setitem__)
    assert [motion_rounds(c) for c in completions] == [3, 1, 0]
    assert logged == {"rounds": pytest.approx(4 / 3)}
    assert is_well_formed(completions[0]) and not is_well_formed(completions[2])


# -- motion rewards ----------------------------------------------------------------------------------------------------
def test_ground_truth_motion_scores_better_mm_distance_than_other_motions(model, gt_codes, tmp_path):
    # A ground truth the VQ-VAE reproduces exactly, so this measures the reward and not the VQ-VAE's fidelity.
    names = sorted(gt_codes)[:9]
    (tmp_path / "new_joint_vecs").mkdir()
    np.save(tmp_path / "new_joint_vecs" / "goal.npy", model.motion_tokenizer.features_from_codes(gt_codes[names[0]]))
    rewards = MotionRewards(model.motion_tokenizer, load_evaluator(), tmp_path, fps=model.fps, norm_in_group=False)
    n = len(names)
    raw, valid = rewards.raw(["p"] * n, [trace(gt_codes[name]) for name in names], ["a person walks forward."] * n,
                             ["goal"] * n)
    assert valid == list(range(n))
    assert raw["mm_distance"][0] == pytest.approx(0.0, abs=1e-5)
    assert all(v < -1e-3 for v in raw["mm_distance"][1:])
    assert raw["duration"][0] == 0.0 and raw["motion_quality"][0] == pytest.approx(0.0, abs=1e-4)
    for term in TERMS:
        assert all(WORST[term] <= v <= 0 for v in raw[term])


def test_round_alignment_scores_every_round_not_only_the_last(model, gt_codes, corpus):
    a, b = (gt_codes[name] for name in sorted(gt_codes)[:2])
    rewards = MotionRewards(model.motion_tokenizer, load_evaluator(), corpus, fps=model.fps, norm_in_group=False)
    completions = [trace(a), trace(b), trace(a, b), trace(b, b)]
    raw, _ = rewards.raw(["p"] * 4, completions, ["a person walks forward."] * 4, [sorted(gt_codes)[0]] * 4)
    tm, rounds = raw["tm_distance"], raw["round_alignment"]
    assert rounds[:2] == pytest.approx(tm[:2], abs=1e-5)           # one round: the final motion's distance
    assert tm[2] == pytest.approx(tm[1], abs=1e-5)                  # the release's term sees only the last round
    assert rounds[2] == pytest.approx((tm[0] + tm[1]) / 2, abs=1e-5)
    assert rounds[3] == pytest.approx(tm[1], abs=1e-5)
    # a run that does not weight the term does not pay for decoding every round
    final_only = MotionRewards(model.motion_tokenizer, load_evaluator(), corpus, fps=model.fps, norm_in_group=False,
                               every_round=False)
    raw, _ = final_only.raw(["p"] * 4, completions, ["a person walks forward."] * 4, [sorted(gt_codes)[0]] * 4)
    assert raw["round_alignment"] == [WORST["round_alignment"]] * 4
    assert raw["tm_distance"] == pytest.approx(tm, abs=1e-6)


def test_a_completion_without_a_motion_gets_the_worst_value_and_is_never_decoded(corpus, model, gt_codes):
    evaluator = load_evaluator()
    name = sorted(gt_codes)[0]
    good = trace(gt_codes[name])
    no_motion = ["<think>[plan]p[/plan]\n[analyze]a[/analyze]\n</think>",          # no span
                 good.replace("</Motion>", ""),                                  # never closed
                 good.split("<Motion_")[0] + "walk walk</Motion>",               # text only
                 "<eos>" + good]                                                  # everything after eos is cut
    assert all(final_codes(c) == [] for c in no_motion)
    completions = [good] + no_motion
    columns = {"caption": ["a person walks forward."] * 5, "motion": [name] * 5}
    raw = MotionRewards(model.motion_tokenizer, evaluator, corpus, fps=model.fps, norm_in_group=False)
    normed = MotionRewards(model.motion_tokenizer, evaluator, corpus, fps=model.fps, norm_in_group=True)
    for term in TERMS:
        values = getattr(raw, term)(["p"] * 5, completions, **columns)
        assert values[1:] == [WORST[term]] * 4 and values[0] > WORST[term]
        assert getattr(normed, term)(["p"] * 5, completions, **columns) == pytest.approx([1.0, 0, 0, 0, 0], abs=1e-3)


def test_group_normalisation_maps_each_group_to_zero_one():
    values = [-1.5, -0.2, -0.9, -0.2, 3.0, 5.0, 4.0, 3.0, 7.0, 7.0]
    groups = ["a"] * 4 + ["b"] * 4 + ["c"] * 2
    normed = minmax_in_groups(values, groups)
    assert all(0.0 <= v < 1.0 for v in normed)
    assert normed[0] == 0.0 and normed[1] == normed[3] == pytest.approx(1.3 / (1.3 + 1e-4))
    assert normed[4] == normed[7] == 0.0 and normed[5] == pytest.approx(2 / (2 + 1e-4))
    assert normed[8:] == [0.0, 0.0]                  # a group of equal rewards carries no preference
    assert minmax_in_groups(values[:4], ["a"] * 4) == normed[:4]   # groups do not see each other


# -- rollouts --------------------------------------------------------------------------------------------------------
def test_motion_spans_hold_only_codes_up_to_the_longest_motion(model):
    ids = model.motion_ids
    processor = MotionSpanCodes(ids, max_codes=2)
    code = ids.first_code
    rows = torch.tensor([[5, 6, 7, 8, 9],                           # no span: untouched
                         [5, 6, 7, 8, ids.start],                   # just opened: codes only
                         [5, 6, ids.start, code + 3, 8],            # one code (and a stray id): codes or </Motion>
                         [5, ids.start, code, code + 1, 9],         # max_codes written: only </Motion>
                         [ids.start, code, ids.end, 8, 9]])         # closed: untouched
    scores = processor(rows, torch.zeros(5, len(model.tokenizer)))
    codes = slice(code, code + ids.nb_code)
    assert torch.isfinite(scores[[0, 4]]).all()
    assert torch.isfinite(scores[1, codes]).all() and torch.isinf(scores[1]).sum() == len(model.tokenizer) - ids.nb_code
    assert torch.isfinite(scores[2, codes]).all() and torch.isfinite(scores[2, ids.end])
    assert torch.isinf(scores[2]).sum() == len(model.tokenizer) - ids.nb_code - 1
    assert torch.isfinite(scores[3, ids.end]) and torch.isinf(scores[3]).sum() == len(model.tokenizer) - 1


def test_prompts_are_what_the_product_sends(corpus, model):
    rows, skipped = prompt_rows(corpus, "train", model.fit_text)
    assert skipped == 0 and len(rows) > len(read_split(corpus, "train"))   # every caption of every clip
    row = rows[0]
    assert set(row) == {"prompt", "caption", "caption_tokens", "motion", "span"}
    product = LoopSession(model, row["caption"], LoopOptions())._ids   # the loop's first model input
    assert model.tokenizer(row["prompt"])["input_ids"] == product     # trl tokenises prompts this way
    assert row["span"] == [0, len(np.load(corpus / "new_joint_vecs" / f"{row['motion']}.npy"))]


# -- training end to end -------------------------------------------------------------------------------------------
def write_config(path: Path, **values) -> Path:
    base = {"model": "builtin", "num_generations": 4, "batch_size": 4, "max_completion_length": 192, "lr": 3e-5,
            "save_steps": 2, "use_cpu": True, "threads": 1}
    path.write_text(json.dumps(base | values))
    return path


def test_grpo_steps_export_a_model_the_loop_runs_and_resume(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    config = write_config(tmp_path / "grpo.json", data=str(corpus), out=str(out))
    assert main(["train-grpo", "--config", str(config), "--max-steps", "2"]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [row for row in log if "reward" in row]
    assert [row["step"] for row in steps] == [1, 2]
    for key in ("rewards/format_reward/mean", "rewards/tm_distance/mean", "rewards/mm_distance/mean",
                "rewards/motion_quality/mean", "rewards/duration/mean", "rounds", "kl", "completions/mean_length"):
        assert all(key in row and math.isfinite(row[key]) for row in steps), key
    assert (out / "checkpoint-2").is_dir()

    trained = load_model(str(out / "model"), "cpu")
    assert trained.max_seconds == load_model("builtin", "cpu").max_seconds
    first = LoopSession(trained, "a person walks forward.", LoopOptions(seconds=2.0, max_rounds=1)).next_round()
    assert first is not None and (first.error or (first.codes and first.joints.shape == (4 * len(first.codes), 22, 3)))

    assert main(["train-grpo", "--config", str(config), "--max-steps", "3"]) == 2    # would overwrite the run
    assert "--resume" in capsys.readouterr().err
    assert main(["train-grpo", "--config", str(config), "--max-steps", "3", "--resume"]) == 0
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [row["step"] for row in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "reward" in row] == [1, 2, 3]


def test_motion_policy_masks_every_token_but_the_codes(model):
    """policy_tokens "motion": the loss mask of a real tokenised trace is 1 exactly on its <Motion_k> tokens."""
    codes = [[5, 17, 301], [42, 42]]
    ids = torch.tensor([model.encode(trace(*codes))])
    mask = motion_token_mask(ids, model.motion_ids.first_code, model.motion_ids.nb_code)[0]
    picked = [model.decode([int(i)]) for i, m in zip(ids[0], mask) if m]
    assert picked == [f"<Motion_{c}>" for c in sum(codes, [])]
    assert mask.sum() < len(ids[0]) / 4   # the plans, assessments and tags carry no loss


def test_grpo_with_the_motion_policy_trains_and_exports(corpus, tmp_path):
    out = tmp_path / "run"
    config = write_config(tmp_path / "grpo.json", data=str(corpus), out=str(out), policy_tokens="motion")
    assert main(["train-grpo", "--config", str(config), "--max-steps", "1"]) == 0
    row = next(json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if "reward" in line)
    assert math.isfinite(row["loss"]) and row["grad_norm"] > 0
    assert load_model(str(out / "model"), "cpu").motion_ids == load_model("builtin", "cpu").motion_ids
    assert json.loads((out / "model" / "llm" / "config.json").read_text())["use_cache"] is True


# -- CLI errors ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("values, argv, message", [
    ({"lr_rate": 1e-5}, [], "unknown config key 'lr_rate'"),
    ({"batch_size": 6}, [], "multiple of num_generations"),
    ({"reward_weights": {"style": 1.0}}, [], "unknown reward 'style'"),
    ({"policy_tokens": "text"}, [], "policy_tokens must be one of 'all', 'motion'"),
    ({}, ["--data", "{tmp}/nowhere"], "nowhere: no such data folder"),
    ({}, ["--model", "{tmp}/empty_model"], "missing: vqvae.safetensors"),
    ({}, ["--resume"], "no checkpoint-N folder to resume from"),
])
def test_bad_input_is_one_readable_error(corpus, tmp_path, capsys, values, argv, message):
    (tmp_path / "empty_model" / "llm").mkdir(parents=True)
    config = write_config(tmp_path / "grpo.json", data=str(corpus), out=str(tmp_path / "run"), **values)
    assert main(["train-grpo", "--config", str(config)] + [a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_missing_or_broken_config_file_is_named(tmp_path, capsys):
    assert main(["train-grpo", "--config", str(tmp_path / "none.json")]) == 2
    assert "none.json: no such config file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{\"lr\": 1e-5,}")
    assert main(["train-grpo", "--config", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not valid JSON" in capsys.readouterr().err
