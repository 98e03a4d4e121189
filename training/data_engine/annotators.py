"""The annotator interface: what writes the texts of the data engine.

The release had GPT-4o write goal analyses, detailed descriptions, and an assessment plus a refinement
instruction for each (goal caption, candidate motion), judging from the candidate's captions (reference
section 4). Two annotators implement the same interface: `ProceduralAnnotator` (exact texts from the
procedural corpus' labels, procedural.py) and `LLMAnnotator` (any local instruct LLM, llm.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Protocol

from backend import prompts
from training.llm.data import MATCH_ASSESSMENT

from .checks import CheckLog
from .motions import MotionInstance


@dataclass(frozen=True)
class Judgement:
    assessment: str
    refinement: str


# What the goal motion gets when its own annotation was dropped: it matches its captions by definition.
GOAL_JUDGEMENT = Judgement(MATCH_ASSESSMENT, prompts.NO_REFINEMENT)


class Annotator(Protocol):
    name: str          # recorded in the output's info
    needs_labels: bool  # whether the data set must have labels.jsonl
    log: CheckLog      # what the double-check kept and dropped

    def sameness_key(self, motion: MotionInstance) -> Hashable | None:
        """Motions with equal keys show the same thing, so none is a negative for another (None: unknown)."""

    def analyses(self, goal: MotionInstance, caption: str) -> list[str]:
        """Up to 4 goal analyses of `caption` (`<Goal_Analysis>`, stage-2 `<Prompt_Analysis>`)."""

    def descriptions(self, goal: MotionInstance, caption: str) -> list[str]:
        """Up to 4 detailed descriptions of the goal motion (t2m_detailed_prompt_generation's captions)."""

    def judge(self, goal: MotionInstance, caption: str,
              candidates: list[MotionInstance]) -> list[Judgement | None]:
        """Assessment and refinement of each candidate against `caption`, None where the double-check dropped
        it. A candidate that is `goal` itself must get a no-refinement judgement."""
