"""Rollouts write the whole trace freely, as the release's do; inside a motion span they may write only what the
product's loop lets a span hold (backend/loop.py `_CodesOnly`): code tokens, then `</Motion>` after at least one
code and at the latest after `max_codes` (the model's longest motion).

trl cannot carry a logits processor in `generation_kwargs` (they become a GenerationConfig, which holds settings,
not objects, and trl calls `generate(**inputs, generation_config=...)`), so `constrain_generate` binds it to the
policy's own `generate`. The training log-probabilities stay those of the unconstrained policy: with one
iteration per batch (num_iterations=1, no vLLM) trl's importance ratio is 1, so this only changes what is
sampled, like the release's replacement of stray tokens in a span by the best code at parse time.
"""
from __future__ import annotations

import functools

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from backend.models.motion_llm import MotionTokenIds


class MotionSpanCodes(LogitsProcessor):
    """Per row: inside an open `<Motion>` span only codes (and `</Motion>` once 1..max_codes codes are written)."""

    def __init__(self, ids: MotionTokenIds, max_codes: int):
        self.ids, self.max_codes = ids, max_codes

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        ids = self.ids
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        last_start = torch.where(input_ids == ids.start, pos, -1).max(dim=1).values
        last_end = torch.where(input_ids == ids.end, pos, -1).max(dim=1).values
        inside = last_start > last_end
        if not inside.any():
            return scores
        is_code = (input_ids >= ids.first_code) & (input_ids < ids.first_code + ids.nb_code)
        written = (is_code & (pos[None] > last_start[:, None])).sum(dim=1)
        allowed = torch.zeros_like(scores, dtype=torch.bool)
        allowed[:, ids.first_code:ids.first_code + ids.nb_code] = (written < self.max_codes)[:, None]
        allowed[:, ids.end] = written > 0
        return torch.where(inside[:, None] & ~allowed, float("-inf"), scores)


def constrain_generate(model: torch.nn.Module, processor: LogitsProcessor) -> None:
    """Every later `model.generate(...)` also applies `processor` (before temperature and top-p)."""
    plain = model.generate

    @functools.wraps(plain)
    def generate(*args, logits_processor=None, **kwargs):
        return plain(*args, logits_processor=LogitsProcessorList([*(logits_processor or []), processor]), **kwargs)

    model.generate = generate
