"""Which completion tokens the GRPO loss trains: all of them (the release), or the motion codes only.

With "all", the built-in model learned within 150 steps to declare its first motion perfect and stop (mean
rounds 2.9 -> 1.0 in the product's loop): the rewards score only the final motion, and every extra round of a
free-running trace is one more chance to break the format. With "motion", the policy gradient (and the KL
term) reach only `<Motion_k>` tokens: GRPO improves what the model generates while its assessments stay what
stage 2 taught. The other tokens are still attended to; they just carry no loss. trl's `tool_mask` is exactly
that mask (loss, not attention), so it is used here.
"""
from __future__ import annotations

import torch

POLICY_TOKENS = ("all", "motion")


def motion_token_mask(completion_ids: torch.Tensor, first_code: int, nb_code: int) -> torch.Tensor:
    """1 where a completion token is a motion code `<Motion_k>`, else 0 (same shape, long)."""
    return ((completion_ids >= first_code) & (completion_ids < first_code + nb_code)).long()


def motion_only(trainer_class, first_code: int, nb_code: int):
    """`trainer_class` (trl's GRPOTrainer) whose loss covers the motion codes of each completion only."""

    class MotionTokenGRPOTrainer(trainer_class):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            mask = motion_token_mask(out["completion_ids"], first_code, nb_code)
            out["tool_mask"] = mask if out.get("tool_mask") is None else out["tool_mask"] * mask
            return out

    return MotionTokenGRPOTrainer
