"""Reading what the model wrote: the analysis, and per round the motion codes, assessment, refinement and finish flag.

Rules (reference/irg-motionllm.md section 8.6, done cleanly): a round's motion is the last *well-formed*
`<Motion>...</Motion>` span, only `<Motion_k>` tokens with 0 <= k < nb_code are kept, and an empty or garbled
span is an error with a readable reason, never a silent code-0 motion.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from backend.prompts import MOTION_END, MOTION_START, NO_REFINEMENT

CODE_RE = re.compile(r"<Motion_(\d+)>")
ANALYSIS_RE = re.compile(r"\[analyze\](.*?)\[/analyze\]", re.S)
ASSESS_RE = re.compile(r"\[assess\](.*?)\[/assess\]", re.S)
BLOCK_TAGS = ("[plan]", "[/plan]", "[generate]", "[assess]", "<think>", "</think>", MOTION_START)
FIELD_RE = re.compile(r"^\s*Assessment:\s*(.*?)\s*\n\s*Refinement:\s*(.*?)\s*$", re.S)


@dataclass
class MotionSpan:
    codes: list[int] = field(default_factory=list)
    error: str = ""


@dataclass
class ParsedRound:
    codes: list[int]
    assessment: str
    refinement: str
    final: bool        # the model said "No refinements needed."
    error: str = ""    # non-empty: no usable motion, with the reason


@dataclass
class ParsedTrace:
    analysis: str
    rounds: list[ParsedRound]
    finished: bool     # `</think>` written, or the last round was judged final


def parse_span_body(body: str, nb_code: int = 512) -> MotionSpan:
    """The codes of one span's inside. Stray text is dropped; a span that is mostly not codes is garbled."""
    codes, stray = [], 0
    for token in re.split(r"(<[^<>]*>)", body):
        if not token.strip():
            continue
        m = CODE_RE.fullmatch(token)
        if m and int(m.group(1)) < nb_code:
            codes.append(int(m.group(1)))
        else:
            stray += 1
    if not codes:
        return MotionSpan(error="the motion span holds no motion codes" + (" (only text)" if stray else " (it is empty)"))
    if stray > len(codes):
        return MotionSpan(error=f"the motion span is garbled: {stray} pieces are not motion codes, only {len(codes)} are")
    return MotionSpan(codes=codes)


def last_motion_span(text: str, nb_code: int = 512) -> MotionSpan:
    """The last well-formed span of `text` (an opened span that never closes is skipped with a reason)."""
    spans = re.findall(re.escape(MOTION_START) + r"((?:(?!" + re.escape(MOTION_START) + ").)*?)" + re.escape(MOTION_END),
                       text, re.S)
    if not spans:
        if MOTION_START in text:
            return MotionSpan(error="the motion span was opened but never closed with </Motion>")
        return MotionSpan(error="the model wrote no motion (no <Motion> span)")
    first_error = ""
    for body in reversed(spans):
        span = parse_span_body(body, nb_code)
        if not span.error:
            return span
        first_error = first_error or span.error
    return MotionSpan(error=first_error)


def is_final(refinement: str) -> bool:
    return refinement.strip() == NO_REFINEMENT


def parse_assessment(text: str) -> tuple[str, str, str]:
    """(assessment, refinement, error) from the last `[assess]...[/assess]` block of `text`."""
    blocks = ASSESS_RE.findall(text)
    if not blocks:
        return "", "", "the model wrote no assessment ([assess] block)"
    block = blocks[-1]
    if any(tag in block for tag in BLOCK_TAGS):
        return "", "", "the assessment block is garbled (it runs into other trace tags)"
    m = FIELD_RE.match(block)
    if not m:
        return block.strip(), "", "the assessment is not in the `Assessment: ... Refinement: ...` form"
    return m.group(1), m.group(2), ""


def parse_round(text: str, nb_code: int = 512) -> ParsedRound:
    """One round: the text from the round's `[generate]` through its `[assess]` block."""
    head, _, _ = text.partition("[assess]")
    span = last_motion_span(head, nb_code)
    assessment, refinement, assess_error = parse_assessment(text)
    return ParsedRound(codes=span.codes, assessment=assessment, refinement=refinement, final=is_final(refinement),
                       error=span.error or assess_error)


def parse_analysis(text: str) -> str:
    m = ANALYSIS_RE.search(text)
    return m.group(1).strip() if m else ""


def split_rounds(response: str) -> list[str]:
    """The response cut into rounds: each piece runs from a `[generate]` through the next `[/assess]`."""
    pieces = []
    for chunk in response.split("[generate]")[1:]:
        end = chunk.find("[/assess]")
        pieces.append("[generate]" + (chunk[: end + len("[/assess]")] if end >= 0 else chunk))
    return pieces


def parse_trace(response: str, nb_code: int = 512) -> ParsedTrace:
    """A whole v3 response (what follows ` Response:`)."""
    rounds = [parse_round(piece, nb_code) for piece in split_rounds(response)]
    finished = "</think>" in response or bool(rounds and rounds[-1].final)
    return ParsedTrace(analysis=parse_analysis(response), rounds=rounds, finished=finished)
