"""Data engine (lite): corpus clips -> stage-1 task samples and stage-2 interleaved traces.

The release asks GPT-4o to compare a candidate's captions with the goal caption (reference section 4).
Our corpus has structured labels, so assessments are exact: `describe_difference(candidate, goal)` says
what differs, the refinement instruction asks for the goal's side of each difference, and the goal itself
gets "The motion perfectly aligns with the goal text." and "No refinements needed.". Negatives are clips
with other labels, ordered from least to most similar (fewest differences last), like the release's
progressive refinement path.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend import prompts
from training.corpus.labels import Label

# Stage-1 task mix (order of prompts.STAGE1_TASKS): text -> motion is the hardest skill, so it is drawn most.
TASK_WEIGHTS = (1.0, 3.0, 0.5, 1.0, 1.5, 1.0, 1.0, 1.0)
MATCH_ASSESSMENT = "The motion perfectly aligns with the goal text."
# Every assessment of a wrong motion opens with this sentence. It parts from MATCH_ASSESSMENT at its third
# word, so greedy decoding weighs "wrong" against "right" as two whole classes at that one token. With
# varied openings the mass of "wrong" was split over many phrasings and greedy always took the single
# "perfectly aligns" path, even where "wrong" had most of the probability (docs/data_engine.md).
MISMATCH_OPENING = "The motion does not align with the goal text."
STOPWORDS = frozenset("a an the person someone man woman is are and then with his her their its of to in on at".split())


@dataclass
class Clip:
    name: str
    captions: list[str]
    label: Label
    codes: list[int]


@dataclass
class Sample:
    """A tokenisable sample: the context (no loss) and response pieces (loss unless flagged ignored)."""

    task: str
    context: str
    pieces: list[tuple[str, bool]]   # (text, ignored)


def read_captions(path: Path) -> list[str]:
    """HumanML3D `texts/NAME.txt`: `caption#tokens#from#to` lines -> captions."""
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines() if line.strip()]


def read_labels(corpus: Path) -> dict[str, Label]:
    """labels.jsonl: one JSON object per clip, its `id` plus the label's fields."""
    labels = {}
    for line in (corpus / "labels.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            labels[row["id"]] = Label.from_dict(row)
    return labels


def read_split(corpus: Path, split: str) -> list[str]:
    return [n.strip() for n in (corpus / f"{split}.txt").read_text().splitlines() if n.strip()]


def load_clips(corpus: Path, split: str, codes: dict[str, list[int]]) -> list[Clip]:
    labels = read_labels(corpus)
    return [Clip(name, read_captions(corpus / "texts" / f"{name}.txt"), labels[name], codes[name])
            for name in read_split(corpus, split) if name in codes and codes[name]]


def encode_corpus(corpus: Path, motion_tokenizer, names: list[str]) -> dict[str, list[int]]:
    """VQ codes of every clip (from `new_joints/NAME.npy`)."""
    return {name: motion_tokenizer.codes_from_joints(np.load(corpus / "new_joints" / f"{name}.npy")) for name in names}


def sentence(text: str) -> str:
    """`text` ending in a period (its case is kept, like describe_difference's sentences)."""
    text = text.strip()
    return text + ("" if not text or text.endswith(".") else ".")


def analysis_text(caption: str) -> str:
    """A short goal analysis: the key words of the caption, in order."""
    words = [w for w in re.findall(r"[a-z0-9']+", caption.lower()) if w not in STOPWORDS]
    return "The key elements are: " + ", ".join(dict.fromkeys(words)) + "."


# describe_difference's sentences -> the instruction that fixes them (first match wins).
INSTRUCTION_RULES = (
    (re.compile(r"^(.*?): the motion does '(.+)' but the prompt asks for '(.+)'$"), r"\1: do '\3' instead of '\2'"),
    (re.compile(r"^(.*?): the (.+) has (\w+) (\S+) but the prompt asks for \w+ (\S+)$"), r"\1: make the \3 \5"),
    (re.compile(r"^the motion has (\d+) action\(s\) but the prompt asks for (\d+)$"), r"do \2 action(s), not \1"),
    (re.compile(r"^(.*?): the prompt also asks to (.+) at the same time, the motion does not$"), r"\1: also \2"),
    (re.compile(r"^(.*?): the motion also does '(.+)', which the prompt does not ask for$"), r"\1: do not \2"),
    (re.compile(r"^the motion adds '(.+)' at the end$"), r"leave out '\1' at the end"),
    (re.compile(r"^the motion is missing '(.+)'$"), r"add '\1' at the end"),
)
MAX_DIFFERENCES = 1   # one difference per round keeps the assessment short (the loop has a time budget)


def mismatch_assessment(details: str) -> str:
    """An assessment of a wrong motion: MISMATCH_OPENING, then what differs."""
    details = details.strip()
    return details if details.startswith(MISMATCH_OPENING) else f"{MISMATCH_OPENING} {details}"


def assessment_text(differences: list[str]) -> str:
    if not differences:
        return MATCH_ASSESSMENT
    return mismatch_assessment(sentence("; ".join(d.rstrip(".") for d in differences[:MAX_DIFFERENCES])))


def instruction(difference: str) -> str:
    for pattern, repl in INSTRUCTION_RULES:
        if pattern.match(difference):
            return pattern.sub(repl, difference)
    return "fix this: " + difference


def refinement_text(differences: list[str]) -> str:
    """The instruction derived from the differences (they name what the goal wants)."""
    if not differences:
        return prompts.NO_REFINEMENT
    return sentence("; ".join(instruction(d.rstrip(".")) for d in differences[:MAX_DIFFERENCES]))


class SampleBuilder:
    """Draws training samples from clips; `describe_difference(a, b)` is the corpus' label comparison."""

    def __init__(self, clips: list[Clip], describe_difference, rng: random.Random, max_intermediate: int = 2,
                 pool: int = 24):
        self.clips, self.diff, self.rng = clips, describe_difference, rng
        self.max_intermediate, self.pool = max_intermediate, pool

    def negatives(self, goal: Clip, n: int) -> list[tuple[Clip, list[str]]]:
        """n clips with a different label, least similar first, each with its differences to the goal."""
        found = []
        for clip in self.rng.sample(self.clips, min(self.pool, len(self.clips))):
            if clip is goal:
                continue
            diffs = self.diff(clip.label, goal.label)
            if diffs:
                found.append((clip, diffs))
        found.sort(key=lambda item: -len(item[1]))
        keep = sorted(self.rng.sample(range(len(found)), min(n, len(found))))
        return [found[i] for i in keep]

    def stage2(self, goal: Clip) -> Sample:
        caption = self.rng.choice(goal.captions)
        # like the release's random.choice([0..4]) over 4 negatives: a trace starts right with probability 1/5
        counts = range(self.max_intermediate + 1)
        n = self.rng.choices(counts, weights=[1.0] + [4.0 / self.max_intermediate] * self.max_intermediate)[0]
        rounds = [prompts.TraceRound(c.codes, assessment_text(d), refinement_text(d)) for c, d in self.negatives(goal, n)]
        rounds.append(prompts.TraceRound(goal.codes, MATCH_ASSESSMENT, prompts.NO_REFINEMENT))
        template = self.rng.choice(prompts.TRACE_TEMPLATES)
        return Sample("stage2_trace", prompts.trace_context(caption, template),
                      prompts.trace_pieces(analysis_text(caption), rounds))

    def stage1(self, goal: Clip, task: str) -> Sample:
        caption = self.rng.choice(goal.captions)
        other = self.rng.choice(goal.captions)   # the "detailed description" stand-in
        cand, diffs = goal, []
        if task.startswith("tm2"):
            negatives = self.negatives(goal, 1)
            if negatives and self.rng.random() < 0.8:
                cand, diffs = negatives[0]
        targets = {
            "m2t_motion_caption": caption, "t2t_prompt_analysis": analysis_text(caption),
            "tm2t_assessment_analysis": assessment_text(diffs), "tm2t_refinement_instruction": refinement_text(diffs),
        }
        s = prompts.stage1_sample(task, caption=other if task == "t2m_detailed_prompt_generation" else caption,
                                  motion=goal.codes, generated=cand.codes, target=targets.get(task, ""),
                                  instruction=refinement_text(diffs) if diffs else "Keep the motion as it is.")
        return Sample(task, s.context, [(s.response, False)])

    def draw(self, stage2_fraction: float) -> Sample:
        goal = self.rng.choice(self.clips)
        if self.rng.random() < stage2_fraction:
            return self.stage2(goal)
        return self.stage1(goal, self.rng.choices(prompts.STAGE1_TASKS, weights=TASK_WEIGHTS)[0])

    def vocabulary_texts(self) -> list[str]:
        """Every text the samples can contain, for building the word-level tokenizer."""
        texts = [prompts.build_context(t) for t in prompts.TRACE_TEMPLATES]
        texts += [prompts.stage1_sample(t, caption="x", motion=[0], generated=[0], target="x", instruction="x").context
                  for t in prompts.STAGE1_TASKS]
        texts.append(prompts.trace_response("x", [prompts.TraceRound([0], MATCH_ASSESSMENT, "x"),
                                                  prompts.TraceRound([0], "x", prompts.NO_REFINEMENT)]))
        texts.append("Keep the motion as it is.")
        for clip in self.clips:
            for caption in clip.captions:
                texts += [caption, analysis_text(caption)]
        for _ in range(4 * len(self.clips)):
            a, b = self.rng.sample(self.clips, 2)
            d = self.diff(a.label, b.label)
            texts.append(prompts.assess_block(assessment_text(d), refinement_text(d)))   # words as the trace has them
            texts.append(refinement_text(d))   # the instructed-refinement prompt has it after ": "
        return texts
