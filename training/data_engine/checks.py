"""The double-check (paper D.1, F.1): rules that reject invalid annotations, and the tally of what was dropped.

The release drops empty responses and "refinements" of the already-perfect goal motion; stage-2 also drops
intermediates whose refinement says no refinement is needed or has 3 words or fewer (reference 3.5). A
candidate is a different motion than the goal, so "no refinement needed" for it misses the difference.
"""
from __future__ import annotations

import re
from collections import Counter

NO_REFINEMENT_RE = re.compile(r"\bno (?:further )?refinements? (?:is |are )?(?:needed|required|necessary)\b", re.I)
MAX_SHORT_WORDS = 3

# Why an annotation was dropped (the keys of `info.double_check[kind].dropped`).
REASONS = {
    "empty": "the response (or its assessment or refinement part) is empty",
    "too_short": f"{MAX_SHORT_WORDS} words or fewer",
    "refines_goal": "asks to refine the goal motion, which already matches",
    "misses_difference": "says no refinement is needed for a candidate that differs from the goal",
    "unverified": "the verification call did not answer yes",
    "duplicate": "repeats an earlier answer for the same caption",
    "not_in_caption": "the labels differ only in details this caption does not state",
}


def says_no_refinement(text: str) -> bool:
    return bool(NO_REFINEMENT_RE.search(text))


def too_short(text: str) -> bool:
    return len(text.split()) <= MAX_SHORT_WORDS


def keeps_intermediate(refinement: str) -> bool:
    """The release's stage-2 rule for an intermediate motion's refinement."""
    return not says_no_refinement(refinement) and not too_short(refinement)


def judgement_problem(assessment: str, refinement: str, is_goal: bool) -> str | None:
    """Why an (assessment, refinement) pair is invalid, or None."""
    if not assessment.strip() or not refinement.strip():
        return "empty"
    if is_goal:
        return None if says_no_refinement(refinement) else "refines_goal"
    if says_no_refinement(refinement):
        return "misses_difference"
    return "too_short" if too_short(refinement) else None


def text_problem(text: str) -> str | None:
    """Why a goal analysis or detailed description is invalid, or None."""
    if not text.strip():
        return "empty"
    return "too_short" if too_short(text) else None


class CheckLog:
    """Per kind of annotation (judgements, analyses, descriptions): how many were checked, kept, and dropped
    for which reason."""

    def __init__(self):
        self.checked: Counter = Counter()
        self.dropped: dict[str, Counter] = {}

    def record(self, kind: str, problem: str | None) -> bool:
        """Count one checked annotation; True when it is kept."""
        if problem is not None and problem not in REASONS:
            raise ValueError(f"unknown drop reason {problem!r}")
        self.checked[kind] += 1
        if problem is not None:
            self.dropped.setdefault(kind, Counter())[problem] += 1
        return problem is None

    def to_dict(self) -> dict:
        out = {}
        for kind, checked in sorted(self.checked.items()):
            dropped = dict(sorted(self.dropped.get(kind, Counter()).items()))
            out[kind] = {"checked": checked, "kept": checked - sum(dropped.values()), "dropped": dropped}
        return out
