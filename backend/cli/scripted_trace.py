"""Release-length text for a model with random weights, so `irg-motion bench --model random-2b` times the loop
the released model would run.

Random weights write garbage where the loop expects an analysis or an assessment, and a garbled round ends the
run after one round. Here the text phases are forced, token by token, to a well-formed analysis and assessment of
the release's typical lengths (reference/benchmarks.md §2c: about 80 analysis tokens, then per round about 60 of
assessment and 40 of instruction; the loop's budgets cap them at 64 and 96). Every forced token still costs one full
forward pass of the model, so the timing is that of real decoding; only the choice of token is made for it. The
motion codes stay the model's own (restricted to codes by the loop).
"""
from __future__ import annotations

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from backend.loop import ANALYSIS_STOPS, ANALYSIS_TOKENS, ASSESSMENT_STOPS, ASSESSMENT_TOKENS

# Filler words the placeholder tokenizer knows (random_release_model adds SCRIPT_WORDS to its vocabulary).
SCRIPT_WORDS = ("the person moves forward with both arms and legs , then turns left slowly and stops ."
                " The motion does not align with the goal text ; it should jump higher .")
ANALYSIS_LENGTH = ANALYSIS_TOKENS - 4          # words, then "[/analyze]" within the loop's budget
ASSESSMENT_LENGTH, INSTRUCTION_LENGTH = 50, 30  # 50 + "\nRefinement:" + 30 + "[/assess]" fits 96


class ForceScript(LogitsProcessor):
    """Makes `script[k]` the only possible k-th new token (then the last one, should generation go on)."""

    def __init__(self, script: list[int], start: int):
        self.script, self.start = script, start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        k = min(input_ids.shape[1] - self.start, len(self.script) - 1)
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.script[k]] = 0.0
        return forced


def words(model, count: int) -> str:
    """Filler text of exactly `count` tokens."""
    pool = model.encode(SCRIPT_WORDS)
    ids = (pool * (count // len(pool) + 1))[:count]
    return model.decode(ids)


def script_text_phases(model) -> None:
    """Wrap `model.lm.generate` so the loop's analysis and assessment calls write release-length text."""
    analysis = model.encode(words(model, ANALYSIS_LENGTH) + ANALYSIS_STOPS[0])
    assessment = model.encode(words(model, ASSESSMENT_LENGTH) + "\nRefinement: " + words(model, INSTRUCTION_LENGTH)
                              + ASSESSMENT_STOPS[0])
    if len(analysis) > ANALYSIS_TOKENS or len(assessment) > ASSESSMENT_TOKENS:
        raise RuntimeError("the scripted text does not fit the loop's token budgets")
    generate = model.lm.generate

    def scripted(*args, **kwargs):
        criteria = kwargs.get("stopping_criteria") or [None]   # the loop's calls have one `_StopAt`
        stops = getattr(criteria[0], "stops", None)
        script = analysis if stops == ANALYSIS_STOPS else assessment if stops == ASSESSMENT_STOPS else None
        if script is not None:
            start = kwargs["input_ids"].shape[1]
            kwargs["logits_processor"] = LogitsProcessorList([*kwargs["logits_processor"], ForceScript(script, start)])
        return generate(*args, **kwargs)

    model.lm.generate = scripted
