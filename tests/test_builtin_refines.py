"""The shipped model's loop refines: prompts whose first motion is wrong get a second round (issue 4).

Sixteen prompts from the corpus generator with a seed the training corpus never used. A first motion is
wrong when the shipped evaluator does not retrieve its own prompt for it among the sixteen (the evaluator
retrieves real clips' prompts at top-1 0.88 in batches of 32; MODEL_CARD.md)."""
from __future__ import annotations

import numpy as np
import pytest

from backend.loop import LoopOptions, LoopSession
from backend.models.loader import load_model
from backend.motion.features import extract_features
from backend.prompts import NO_REFINEMENT

PROMPTS = 16


@pytest.fixture(scope="module")
def loops():
    corpus = pytest.importorskip("training.corpus", reason="the procedural corpus generator is not in this checkout")
    from training.evaluator import load_evaluator

    model = load_model("builtin", device="cpu")
    rng = np.random.default_rng(20261125)
    clips = [corpus.generate_clip(rng, captions=1) for _ in range(PROMPTS)]
    runs = [list(LoopSession(model, c.captions[0], LoopOptions(
        seconds=float(np.clip(c.label.duration, model.min_seconds, model.max_seconds)), max_rounds=3)).rounds())
        for c in clips]
    first = [extract_features(run[0].joints).features for run in runs if not run[0].error]
    assert len(first) == PROMPTS, "a first round was garbled"
    similarity = load_evaluator().similarity([c.captions[0] for c in clips], first)
    wrong = similarity.argmax(0) != np.arange(PROMPTS)   # the motion's best caption is another prompt's
    return runs, wrong


def test_wrong_first_motions_get_a_second_round(loops):
    runs, wrong = loops
    assert wrong.sum() >= PROMPTS // 2, "the evaluator judged most first motions right: the test needs harder prompts"
    refined = [len(run) > 1 for run, w in zip(runs, wrong) if w]
    # 8 of 10 here, 154 of 168 on corpus_v1's held-out prompts (MODEL_CARD.md); the model before the shared
    # verdict opening refined none
    assert np.mean(refined) >= 0.6, f"{sum(refined)} of {len(refined)} wrong first motions got a second round"


def test_every_refined_round_carries_an_instruction_and_the_last_one_is_final(loops):
    runs, _ = loops
    for run in runs:
        for earlier in run[:-1]:
            assert earlier.instruction and earlier.instruction != NO_REFINEMENT and not earlier.final
        assert run[-1].final
