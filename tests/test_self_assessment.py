"""Self-assessment traces: the model's own first rounds, judged against the prompt's label."""
from __future__ import annotations

import random

import pytest

from backend import prompts
from backend.models.loader import load_model
from training.evaluator import load_evaluator
from training.llm import self_assessment
from training.llm.self_assessment import SelfAssessmentSampler, SelfRound


class _Base:
    """The smallest sample source: counts how it was asked."""

    def __init__(self):
        self.rng, self.calls = random.Random(0), []

    def draw(self, stage2_fraction):
        self.calls.append(stage2_fraction)
        return "base"

    def vocabulary_texts(self):
        return []


WRONG = SelfRound("g", "a person jumps.", [5, 6], "The motion shows 'walk' where the goal wants 'jump'.",
                  "Do 'jump' instead of 'walk'.")
RIGHT = SelfRound("g", "a person jumps.", [7, 8], *self_assessment.MATCH)


def test_a_wrong_first_motion_is_refined_and_carries_no_loss():
    sampler = SelfAssessmentSampler(_Base(), [WRONG], {"g": [1, 2, 3]}, fraction=1.0)
    sample = sampler.trace(WRONG)
    ignored = [text for text, flag in sample.pieces if flag]
    assert ignored == ["[generate]<Motion><Motion_5><Motion_6></Motion>[/generate]\n"]
    response = "".join(text for text, _ in sample.pieces)
    assert "Refinement: Do 'jump' instead of 'walk'.[/assess]" in response
    assert response.count("<Motion>") == 2 and "<Motion_1><Motion_2><Motion_3>" in response   # then the goal
    assert sample.context in {prompts.trace_context("a person jumps.", t) for t in prompts.TRACE_TEMPLATES}


def test_a_right_first_motion_ends_the_trace_and_is_learnt():
    sample = SelfAssessmentSampler(_Base(), [RIGHT], {"g": [1, 2, 3]}, fraction=1.0).trace(RIGHT)
    assert not any(flag for _, flag in sample.pieces)
    response = "".join(text for text, _ in sample.pieces)
    assert response.count("<Motion>") == 1 and prompts.NO_REFINEMENT in response


def test_the_stage2_share_is_kept():
    base = _Base()
    sampler = SelfAssessmentSampler(base, [WRONG], {"g": [1, 2, 3]}, fraction=0.5)
    draws = [sampler.draw(0.4) for _ in range(4000)]
    own = sum(d != "base" for d in draws) / len(draws)
    assert own == pytest.approx(0.2, abs=0.03)
    # the base then makes 0.2 of all draws traces: 0.2 / 0.8 of its own draws
    assert base.calls[0] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="self-assess"):
        SelfAssessmentSampler(_Base(), [], {}, 0.5)


@pytest.mark.slow
def test_collect_judges_the_builtin_models_first_rounds(tmp_path):
    writer = pytest.importorskip("training.corpus.writer")
    corpus = writer.write_corpus(tmp_path / "corpus", clips=30, seed=11, workers=1)
    rounds = self_assessment.collect(load_model("builtin", "cpu"), load_evaluator(), corpus, count=6, seed=1)
    assert len(rounds) == 6
    for r in rounds:
        assert r.codes and all(0 <= c < 512 for c in r.codes)
        assert r.right or ("'" in r.assessment and r.refinement != prompts.NO_REFINEMENT)
    self_assessment.save(rounds, tmp_path / "r.jsonl")
    assert self_assessment.load(tmp_path / "r.jsonl") == rounds
