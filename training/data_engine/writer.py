"""build_annotations: a HumanML3D-layout data set -> the eight stage-1 annotation files and the stage-2 traces.

For every motion instance of the split (the goal): 4 negatives ranked by the evaluator (ranking.py), then
for each of its captions the annotator's analyses, detailed descriptions, and a judgement of each negative
and of the goal itself. Files (names as the release's, schema.py): one per stage-1 task, stage2_traces.json,
and negatives.json (the ranking's picks with their similarities, for inspection).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from training.llm.data import mismatch_assessment

from . import ranking, schema
from .annotators import GOAL_JUDGEMENT, Annotator, Judgement
from .checks import keeps_intermediate
from .motions import MotionInstance, load_motions


def evaluator_dims(evaluator) -> tuple[int, int]:
    """(feature width, unit length) of the project's evaluator or the Guo one."""
    c = evaluator.config
    return getattr(c, "feature_dim", None) or c.dim_pose, c.unit_length


def check_features(evaluator, motions: list[MotionInstance], data_dir: Path) -> None:
    width, _ = evaluator_dims(evaluator)
    for m in motions:
        if m.features.ndim != 2 or m.features.shape[1] != width:
            raise ValueError(f"{data_dir / 'new_joint_vecs' / (m.name + '.npy')}: features of shape "
                             f"{m.features.shape} but the evaluator {evaluator.source} takes {width}-d ones; pass "
                             "--evaluator one trained on this data set "
                             f"(`irg-motion train-evaluator --data {data_dir}`)")


def group_ids(keys: list) -> np.ndarray:
    """Equal keys -> equal ids; each None gets an id of its own."""
    ids: dict = {}
    return np.array([-1 - i if k is None else ids.setdefault(k, len(ids)) for i, k in enumerate(keys)])


class Annotations:
    """The items of every file, built goal by goal."""

    def __init__(self):
        self.stage1: dict[str, list[dict]] = {task: [] for task in schema.STAGE1}
        self.traces: list[dict] = []
        self.negatives: list[dict] = []
        self.goal_fallbacks = 0          # goal judgements the double-check dropped (replaced by GOAL_JUDGEMENT)
        self.dropped_intermediates = 0   # stage-2 intermediates dropped by the release's rule (reference 3.5)

    def add(self, goal: MotionInstance, negatives: list[MotionInstance], scores: list[float], annotator: Annotator):
        goal_motion = {schema.GOAL_MOTION: goal.ref()}
        self.negatives.append({"goal": goal.key, **goal.ref(), "negatives": [
            {**n.ref(), "similarity": round(float(s), 6)} for n, s in zip(negatives, scores)]})
        for task in ("m2t_motion_caption", "t2m_direct_generation"):
            self.stage1[task].append(schema.stage1_item(task, goal_motion, {schema.GOAL_CAPTION: list(goal.captions)}))
        judged, traces = [], []   # (meta_inst_name, caption, candidate, judgement); one trace per caption
        for k, caption in enumerate(goal.captions):
            judgements = annotator.judge(goal, caption, negatives + [goal])
            self.goal_fallbacks += judgements[-1] is None
            goal_judgement = judgements[-1] or GOAL_JUDGEMENT
            # whatever the annotator's wording, a wrong motion's assessment opens with the shared verdict sentence
            pairs = [(n, Judgement(mismatch_assessment(j.assessment), j.refinement))
                     for n, j in zip(negatives, judgements) if j is not None]
            judged += [(f"{goal.key}_{k}", caption, cand, j) for cand, j in pairs + [(goal, goal_judgement)]]
            analyses = annotator.analyses(goal, caption)
            if analyses:
                self.stage1["t2t_prompt_analysis"].append(schema.stage1_item(
                    "t2t_prompt_analysis", {}, {schema.GOAL_CAPTION: [caption], schema.GOAL_ANALYSIS: analyses}))
                traces.append(self.trace_candidate(goal, caption, analyses, goal_judgement, pairs))
            descriptions = annotator.descriptions(goal, caption)
            if descriptions:
                self.stage1["t2m_detailed_prompt_generation"].append(schema.stage1_item(
                    "t2m_detailed_prompt_generation", goal_motion, {schema.GOAL_CAPTION: descriptions}))
        for task in ("tm2t_assessment_analysis", "tm2t_refinement_instruction", "tm2m_direct_refinement",
                     "tm2m_instructed_refinement"):
            target = goal_motion if task.startswith("tm2m") else {}
            self.stage1[task].append(schema.stage1_item(task, candidates=[
                {"meta_inst_name": inst, "motions": {schema.GENERATED_MOTION: cand.ref()} | target,
                 "text": {schema.GOAL_CAPTION: [caption], schema.ASSESSMENT: [j.assessment],
                          schema.REFINEMENT: [j.refinement]}}
                for inst, caption, cand, j in judged]))
        if traces:
            self.traces.append(schema.trace_item(traces))

    def trace_candidate(self, goal: MotionInstance, caption: str, analyses: list[str], goal_judgement: Judgement,
                        negatives: list[tuple[MotionInstance, Judgement]]) -> dict:
        """One caption's stage-2 trace: the kept negatives, least to most similar, then the goal."""
        kept = [(n, j) for n, j in negatives if keeps_intermediate(j.refinement)][:schema.MAX_INTERMEDIATES]
        self.dropped_intermediates += len(negatives) - len(kept)
        motions = {schema.GOAL_MOTION: goal.ref()}
        motions |= {schema.intermediate_motion(k): n.ref() for k, (n, _) in enumerate(kept)}
        text = {schema.GOAL_CAPTION: caption, schema.PROMPT_ANALYSIS: analyses,
                schema.ASSESS_GOAL: {"assessment": goal_judgement.assessment, "refinement": goal_judgement.refinement}}
        text |= {schema.assess_intermediate(k): {"assessment": j.assessment, "refinement": j.refinement}
                 for k, (_, j) in enumerate(kept)}
        return {"motions": motions, "text": text}


def write_json(path: Path, info: dict, items: list[dict]) -> Path:
    for i, item in enumerate(items):
        item["id"] = i
    entries = sum(len(item.get("candidate_motion_text", [None])) for item in items)
    path.write_text(json.dumps({"info": info | {"num_annotations": len(items), "num_instances": entries},
                                "annotations": items}, indent=1, ensure_ascii=False) + "\n")
    return path


def build_annotations(data_dir: str | Path, out_dir: str | Path, annotator: Annotator, evaluator, split: str = "train",
                      seed: int = 0, n_neg: int = 4, portion: float = 0.9, progress: bool = True,
                      limit: int | None = None) -> dict[str, Path]:
    """Annotate `split` of `data_dir` into `out_dir`; returns task (and "stage2", "negatives") -> file.
    `limit` annotates only the first N goal instances (negatives still come from the whole split)."""
    if n_neg < 1:
        raise ValueError(f"--negatives must be at least 1, got {n_neg}")
    if not 0.0 <= portion < 1.0:
        raise ValueError(f"--portion must be in [0, 1), got {portion}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    motions = load_motions(data_dir, split, labels=annotator.needs_labels, min_frames=evaluator_dims(evaluator)[1])
    check_features(evaluator, motions, data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    goals = motions[:limit] if limit else motions
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    out = Annotations()
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(f"embedding {len(motions)} {split} motions", total=None)
        caption_emb, motion_emb = ranking.embed(evaluator, motions)
        bases = np.array([m.base_name for m in motions])
        groups = group_ids([annotator.sameness_key(m) for m in motions])
        bar.update(task, description=f"annotating {len(goals)} motions ({annotator.name})", total=len(goals),
                   completed=0)
        for i, goal in enumerate(goals):
            scores = ranking.anchor_scores(caption_emb[i], motion_emb)
            eligible = (bases != goal.base_name) & (groups != groups[i])
            picks = ranking.progressive_negatives(scores, eligible, n_neg, portion, rng)
            out.add(goal, [motions[j] for j in picks], [scores[j] for j in picks], annotator)
            bar.advance(task)
    info = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data": str(data_dir),
            "split": split, "goal_motions": len(goals), "pool_motions": len(motions), "annotator": annotator.name,
            "evaluator": str(evaluator.source), "seed": seed, "negatives": n_neg, "portion": portion,
            "double_check": annotator.log.to_dict(), "goal_fallbacks": out.goal_fallbacks,
            "stage2_dropped_intermediates": out.dropped_intermediates}
    files = {task: write_json(out_dir / name, info | {"task": task}, out.stage1[task])
             for task, (name, _, _) in schema.STAGE1.items()}
    files["stage2"] = write_json(out_dir / schema.TRACE_FILE, info | {"task": schema.TRACE_TASK}, out.traces)
    files["negatives"] = out_dir / schema.NEGATIVES_FILE
    files["negatives"].write_text(json.dumps({"info": info, "negatives": out.negatives}, indent=1) + "\n")
    return files
