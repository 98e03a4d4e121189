"""Training samples from annotation files: the data engine's (training/data_engine) or the release's own.

`AnnotationSampler` has SampleBuilder's interface (`draw`, `vocabulary_texts`, `rng`), so the trainer can
draw from annotation files instead of the lite engine. As the release's loader does per access, it draws
one item, one candidate of it and one value of every list-valued text field; unlike the release it never
deletes `candidate_motion_text` (reference section 8 item 8), so every access sees every candidate. A
trace keeps a random 0..all of its valid intermediates in order; their motions are flagged ignored (no loss,
`--ignore-incorrect`) by prompts.trace_pieces. The task comes from the human template, so the release's
instructed-refinement file (which says `tm2m_direct_refinement`) reads right too.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from backend import prompts
from training.data_engine import schema
from training.data_engine.checks import keeps_intermediate
from training.evaluator.data import FPS
from training.llm.data import TASK_WEIGHTS, Sample, SampleBuilder

TRACE = "stage2_trace"
CODE_FRAMES = 4   # frames per VQ code
DETAILED = "t2m_detailed_prompt_generation"
TASK_OF_TEMPLATE = {human: task for task, (_, human, _) in schema.STAGE1.items() if task != DETAILED}
TASK_OF_TEMPLATE[schema.TRACE_TEMPLATE] = TRACE
# What a candidate needs, per task: motion keys, then text keys.
REQUIRED = {
    "m2t_motion_caption": ((schema.GOAL_MOTION,), (schema.GOAL_CAPTION,)),
    "t2m_direct_generation": ((schema.GOAL_MOTION,), (schema.GOAL_CAPTION,)),
    "t2t_prompt_analysis": ((), (schema.GOAL_CAPTION, schema.GOAL_ANALYSIS)),
    DETAILED: ((schema.GOAL_MOTION,), (schema.GOAL_CAPTION,)),
    "tm2t_assessment_analysis": ((schema.GENERATED_MOTION,), (schema.GOAL_CAPTION, schema.ASSESSMENT)),
    "tm2t_refinement_instruction": ((schema.GENERATED_MOTION,), (schema.GOAL_CAPTION, schema.REFINEMENT)),
    "tm2m_direct_refinement": ((schema.GENERATED_MOTION, schema.GOAL_MOTION), (schema.GOAL_CAPTION,)),
    "tm2m_instructed_refinement": ((schema.GENERATED_MOTION, schema.GOAL_MOTION),
                                   (schema.GOAL_CAPTION, schema.REFINEMENT)),
    TRACE: ((schema.GOAL_MOTION,), (schema.GOAL_CAPTION, schema.PROMPT_ANALYSIS, schema.ASSESS_GOAL)),
}


def span_codes(codes: list[int], f_tag: float, to_tag: float) -> list[int]:
    """The codes of a `{f_tag, to_tag}` span (seconds; not f < to means the whole clip, as in the release)."""
    if not f_tag < to_tag:
        return list(codes)
    return list(codes[int(f_tag * FPS) // CODE_FRAMES:int(to_tag * FPS) // CODE_FRAMES])


def task_of(item: dict) -> str | None:
    human = item.get("conversations", [{}, {}])[1].get("value")
    if human == "<Text2Motion_Template>" and item.get("task") == DETAILED:
        return DETAILED
    return TASK_OF_TEMPLATE.get(human)


class AnnotationSampler:
    """Samples from every `*.json` in `folder` holding `{"annotations": [...]}`; `codes` maps a motion name
    (new_joint_vecs/NAME.npy) to its VQ codes. Candidates whose motions have no codes are left out and
    counted in `skipped`."""

    def __init__(self, folder: str | Path, codes: dict[str, list[int]], rng: random.Random,
                 task_weights: tuple[float, ...] = TASK_WEIGHTS):
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such annotation folder; write one with `irg-motion annotate`")
        self.codes, self.rng, self.task_weights = codes, rng, task_weights
        self.items: dict[str, list[list[dict]]] = {task: [] for task in REQUIRED}   # task -> items -> candidates
        self.skipped: Counter = Counter()
        for path in sorted(folder.glob("*.json")):
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("annotations"), list):
                for item in data["annotations"]:
                    self.add(item)
        if not any(self.items.values()):
            raise ValueError(f"{folder}: no usable annotations (files with an `annotations` list whose motions are "
                             "in the codes); write them with `irg-motion annotate --data DATA --out {folder}`")
        self.folder = folder

    def require(self, stage2_share: float) -> None:
        """Refuse a stage the folder has no items for, rather than silently training the other one."""
        if stage2_share > 0 and not self.items[TRACE]:
            raise ValueError(f"{self.folder}: no usable stage-2 traces ({schema.TRACE_FILE}), but the config trains "
                             "stage 2; write them with `irg-motion annotate`, or set \"stage\": \"1\"")
        if stage2_share < 1 and not any(self.items[t] for t in prompts.STAGE1_TASKS):
            raise ValueError(f"{self.folder}: no usable stage-1 task files, but the config trains stage 1; write "
                             "them with `irg-motion annotate`, or set \"stage\": \"2\"")

    def add(self, item: dict) -> None:
        task = task_of(item)
        if task is None:
            self.skipped["unknown template"] += 1
            return
        candidates = []
        for cand in item.get("candidate_motion_text") or [{}]:
            merged = {"motions": item.get("motions", {}) | cand.get("motions", {}),
                      "text": item.get("text", item.get("texts", {})) | cand.get("text", {})}
            resolved = self.resolve(task, merged)
            if resolved is None:
                self.skipped["candidate without codes or fields"] += 1
            else:
                candidates.append(resolved)
        if candidates:
            self.items[task].append(candidates)

    def motion_codes(self, ref: dict) -> list[int]:
        codes = self.codes.get(ref.get("motion_name", ""))
        return span_codes(codes, float(ref.get("f_tag", 0.0)), float(ref.get("to_tag", 0.0))) if codes else []

    def resolve(self, task: str, cand: dict) -> dict | None:
        """The candidate with motion codes in place of references, or None when something is missing."""
        motion_keys, text_keys = REQUIRED[task]
        codes = {k: self.motion_codes(cand["motions"][k]) for k in motion_keys if k in cand["motions"]}
        if len(codes) < len(motion_keys) or not all(codes.values()) or not all(cand["text"].get(k) for k in text_keys):
            return None
        out = {"codes": codes, "text": cand["text"]}
        if task == TRACE:   # valid intermediates, in index order (the release's stage-2 rule)
            out["intermediates"] = []
            k = 0
            while schema.intermediate_motion(k) in cand["motions"]:
                judged, codes_k = cand["text"].get(schema.assess_intermediate(k)), self.motion_codes(
                    cand["motions"][schema.intermediate_motion(k)])
                if judged and codes_k and judged.get("assessment") and keeps_intermediate(judged.get("refinement", "")):
                    out["intermediates"].append(prompts.TraceRound(codes_k, judged["assessment"], judged["refinement"]))
                k += 1
        return out

    def pick(self, value):
        return self.rng.choice(value) if isinstance(value, list) else value

    def draw(self, stage2_fraction: float) -> Sample:
        tasks = [t for t in prompts.STAGE1_TASKS if self.items[t]]
        if self.items[TRACE] and (not tasks or self.rng.random() < stage2_fraction):
            return self.trace(self.rng.choice(self.items[TRACE]))
        weights = [self.task_weights[prompts.STAGE1_TASKS.index(t)] for t in tasks]
        task = self.rng.choices(tasks, weights=weights)[0]
        return self.stage1(task, self.rng.choice(self.items[task]))

    def stage1(self, task: str, candidates: list[dict]) -> Sample:
        cand = self.rng.choice(candidates)
        text = {k: self.pick(v) for k, v in cand["text"].items()}
        goal, generated = cand["codes"].get(schema.GOAL_MOTION), cand["codes"].get(schema.GENERATED_MOTION)
        target = {"m2t_motion_caption": schema.GOAL_CAPTION, "t2t_prompt_analysis": schema.GOAL_ANALYSIS,
                  "tm2t_assessment_analysis": schema.ASSESSMENT, "tm2t_refinement_instruction": schema.REFINEMENT}
        s = prompts.stage1_sample(task, caption=text[schema.GOAL_CAPTION], motion=goal, generated=generated,
                                  target=text.get(target.get(task), ""), instruction=text.get(schema.REFINEMENT, ""))
        return Sample(task, s.context, [(s.response, False)])

    def trace(self, candidates: list[dict]) -> Sample:
        cand = self.rng.choice(candidates)
        text, steps = cand["text"], cand["intermediates"]
        kept = sorted(self.rng.sample(range(len(steps)), self.rng.choice(range(len(steps) + 1))))
        goal = text[schema.ASSESS_GOAL]
        rounds = [steps[k] for k in kept] + [prompts.TraceRound(cand["codes"][schema.GOAL_MOTION], goal["assessment"],
                                                                 goal["refinement"])]
        template = self.rng.choice(prompts.TRACE_TEMPLATES)
        return Sample(TRACE, prompts.trace_context(self.pick(text[schema.GOAL_CAPTION]), template),
                      prompts.trace_pieces(self.pick(text[schema.PROMPT_ANALYSIS]), rounds))

    def vocabulary_texts(self) -> list[str]:
        """Every text the samples can contain, for building the word-level tokenizer."""
        texts = SampleBuilder([], None, self.rng).vocabulary_texts()   # no clips: the templates and trace skeleton
        texts.append(" \n")   # a lone " " piece: the space of "Motion: <Motion>", which the lite vocabulary lacks
        for items in self.items.values():
            for candidates in items:
                for cand in candidates:
                    for value in cand["text"].values():
                        for v in value if isinstance(value, list) else [value]:
                            # word pieces keep a leading space: a text opens a response ("Response:a man")
                            # or follows a space in a template ("depicts a man"); a trace's judgement dict
                            # appears as its [assess] block
                            texts += [v, " " + v] if isinstance(v, str) else [
                                prompts.assess_block(v["assessment"], v["refinement"])]
        return texts
