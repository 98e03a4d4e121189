"""On-policy self-assessment traces: the model's own first motions, judged, as stage-2 intermediates.

Stage-2 traces put other clips where the model's first motion goes. A model trained only on them learns to
tell those clips from the goal, and then judges its own first motion (which resembles what it would generate
for the goal) as perfect every time: the loop never refines. Here the model writes its first round for train
prompts; the evaluator's nearest train motion names what that motion shows (its label), the procedural
annotator says how it differs from the goal's label in the data engine's phrasings, and the trace continues
with the refinement and the goal motion. A first motion judged right becomes a one-round trace that ends on
it. Like every intermediate, the model's own codes carry no loss when they are wrong.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend import prompts
from backend.loop import LoopOptions, LoopSession
from backend.motion.features import extract_features
from training.data_engine.procedural import ProceduralAnnotator
from training.llm.data import (MATCH_ASSESSMENT, Sample, analysis_text, mismatch_assessment, read_captions,
                               read_labels, read_split)

TASK = "stage2_self_assessment"
MATCH = (MATCH_ASSESSMENT, prompts.NO_REFINEMENT)


@dataclass
class SelfRound:
    name: str                    # the goal clip
    caption: str
    codes: list[int]             # the model's first motion
    assessment: str
    refinement: str              # prompts.NO_REFINEMENT when the motion was judged right

    @property
    def right(self) -> bool:
        return self.refinement == prompts.NO_REFINEMENT


def nearest_labels(evaluator, corpus: Path, names: list[str]):
    """A function joints -> the label of the train clip whose evaluator embedding is nearest."""
    labels = read_labels(corpus)
    bank = evaluator.embed_motions([np.load(corpus / "new_joint_vecs" / f"{n}.npy") for n in names])

    def label_of(joints: np.ndarray):
        emb = evaluator.embed_motions([extract_features(joints).features])[0]
        return labels[names[int(np.argmax(bank @ emb))]]
    return label_of


def collect(model, evaluator, corpus: str | Path, count: int, seed: int = 0, progress=None) -> list[SelfRound]:
    """The model's greedy first round for `count` random train prompts, each judged against its goal label."""
    corpus = Path(corpus)
    names = read_split(corpus, "train")
    labels = read_labels(corpus)
    label_of = nearest_labels(evaluator, corpus, names)
    annotator = ProceduralAnnotator(seed)
    rng = random.Random(seed)
    out = []
    for name in rng.sample(names, min(count, len(names))):
        caption = rng.choice(read_captions(corpus / "texts" / f"{name}.txt"))
        seconds = float(np.clip(labels[name].duration or 4.0, model.min_seconds, model.max_seconds))
        with torch.inference_mode():
            first = LoopSession(model, caption, LoopOptions(seconds=seconds, max_rounds=1)).next_round()
        if first is not None and not first.error:
            differences = annotator.visible_differences(label_of(first.joints), labels[name], caption)
            judgement = annotator.phrase(differences) if differences else None
            # a wrong motion's verdict opens as in the data engine's files (writer.py), so both teach one wording
            assessment, refinement = (mismatch_assessment(judgement.assessment), judgement.refinement) \
                if judgement else MATCH
            out.append(SelfRound(name, caption, first.codes, assessment, refinement))
        if progress is not None:
            progress()
    return out


def save(rounds: list[SelfRound], path: str | Path) -> None:
    Path(path).write_text("".join(json.dumps(r.__dict__) + "\n" for r in rounds))


def load(path: str | Path) -> list[SelfRound]:
    return [SelfRound(**json.loads(line)) for line in Path(path).read_text().splitlines() if line.strip()]


class SelfAssessmentSampler:
    """Wraps a sample source: of its stage-2 draws, `fraction` become self-assessment traces."""

    def __init__(self, base, rounds: list[SelfRound], codes: dict[str, list[int]], fraction: float):
        if not rounds:
            raise ValueError("no self-assessment rounds to train on; collect them first (irg-motion self-assess)")
        self.base, self.rounds, self.codes, self.fraction = base, rounds, codes, fraction
        self.rng = base.rng

    def trace(self, r: SelfRound) -> Sample:
        own = prompts.TraceRound(r.codes, r.assessment, r.refinement)
        steps = [own] if r.right else [own, prompts.TraceRound(self.codes[r.name], *MATCH)]
        return Sample(TASK, prompts.trace_context(r.caption, self.rng.choice(prompts.TRACE_TEMPLATES)),
                      prompts.trace_pieces(analysis_text(r.caption), steps))

    def draw(self, stage2_fraction: float) -> Sample:
        if self.rng.random() < stage2_fraction * self.fraction:
            return self.trace(self.rng.choice(self.rounds))
        return self.base.draw(stage2_fraction * (1 - self.fraction) / (1 - stage2_fraction * self.fraction))

    def vocabulary_texts(self) -> list[str]:
        return self.base.vocabulary_texts() + [prompts.assess_block(r.assessment, r.refinement) for r in self.rounds]
