"""GRPO rewards in trl's signature: `f(prompts, completions, **columns) -> list[float]`, one value per completion.

- `format_reward` (the release's strict_format): 1.0 for a well-formed v3 trace, else 0.0.
- `MotionRewards.tm_distance`: -||E_text(caption) - E_motion(final)||, the release's guo_tm_distance with the
  project's evaluator (training/evaluator).
- `MotionRewards.mm_distance`: -||E_motion(ground truth) - E_motion(final)||, the release's guo_mm_distance.
- `MotionRewards.round_alignment`: -mean over the completion's rounds of ||E_text(caption) - E_motion(round)||, a
  term the release does not have. The release scores only the final motion, so a refinement that makes the
  motion worse costs nothing as long as the last round is fine; this term scores every round's motion.
- `MotionRewards.motion_quality` and `MotionRewards.duration`: fidelity terms the release does not have. The
  alignment rewards are the test metric itself (reference section 8 item 9: RL raised Top-1 and doubled FID), so
  two terms the evaluator cannot see pull the other way: foot skating and jitter beyond the ground truth's, and a
  duration far from the ground truth's (without it a policy may shorten motions to whatever embeds best).

Distances are between unit-length embeddings (the project's evaluator already makes them unit length), so they
lie in [0, 2]. The final motion is the last well-formed `<Motion>` span of the completion (cut at the first
`<eos>`), decoded by the VQ-VAE; a completion without one gets each term's worst value (WORST) and nothing is
decoded. With `norm_in_group` (the release's reward_norm_before_add) every term but the format is min-max
normalised over the completions of one prompt: (r - min) / (max - min + 1e-4), in [0, 1).
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from backend.motion.features import recover_from_ric
from backend.trace import last_motion_span, parse_trace, split_rounds
from training.metrics import foot_skating_ratio, jitter

EOS = "<eos>"
TERMS = ("tm_distance", "mm_distance", "round_alignment", "motion_quality", "duration")
# Each term's value for a completion with no final motion: no motion scores at least as badly as any motion.
WORST = {"tm_distance": -2.0, "mm_distance": -2.0, "round_alignment": -2.0, "motion_quality": -1.0, "duration": -1.0}
NORM_EPS = 1e-4
JITTER_FLOOR = 1.0   # m/s^3 added to both jitters, so a still ground truth does not make any jitter infinitely bad

# strict_format: <think> plan analyze plan (generate plan assess plan)+ </think>. A block's text may not hold
# another block's tag, and motion spans hold only code tokens. The release allows zero rounds; a trace without a
# motion is not well formed here (prompts.trace_pieces needs the goal round too).
_BODY = r"(?:(?!\[/?(?:plan|analyze|generate|assess)\]|</?think>|</?Motion)[\s\S])*"
_PLAN = rf"\[plan\]{_BODY}\[/plan\]\s*"
_ROUND = (r"\[generate\]<Motion>(?:<Motion_\d{1,3}>)+</Motion>\[/generate\]\s*"
          + _PLAN + rf"\[assess\]{_BODY}\[/assess\]\s*" + _PLAN)
TRACE_RE = re.compile(rf"\s*<think>\s*{_PLAN}\[analyze\]{_BODY}\[/analyze\]\s*{_PLAN}(?:{_ROUND})+</think>\s*")


def cut_at_eos(completion: str) -> str:
    return completion.split(EOS, 1)[0]


def is_well_formed(completion: str) -> bool:
    """The v3 block order (TRACE_RE), and every round readable by the product's parser (codes, assessment form)."""
    text = cut_at_eos(completion)
    return TRACE_RE.fullmatch(text) is not None and not any(r.error for r in parse_trace(text).rounds)


def motion_rounds(completion: str) -> int:
    """`[generate]` blocks that hold a usable motion: the chain length the paper says RL makes longer."""
    return sum(not last_motion_span(piece).error for piece in split_rounds(cut_at_eos(completion)))


def format_reward(prompts: list, completions: list[str], log_metric: Callable | None = None, **_) -> list[float]:
    """1.0 for a well-formed v3 trace, else 0.0; logs the mean number of rounds as `rounds`."""
    if log_metric is not None:
        log_metric("rounds", float(np.mean([motion_rounds(c) for c in completions])))
    return [float(is_well_formed(c)) for c in completions]


def final_codes(completion: str, nb_code: int = 512) -> list[int]:
    """The codes of the last well-formed motion span ([] when there is none: never a code-0 motion)."""
    return last_motion_span(cut_at_eos(completion), nb_code).codes


def round_codes(completion: str, nb_code: int = 512) -> list[list[int]]:
    """The codes of every round that holds a usable motion, in order."""
    spans = (last_motion_span(piece, nb_code) for piece in split_rounds(cut_at_eos(completion)))
    return [span.codes for span in spans if not span.error]


def minmax_in_groups(values: Sequence[float], groups: Sequence, eps: float = NORM_EPS) -> list[float]:
    """(r - min) / (max - min + eps) over the values that share a group key, in [0, 1)."""
    members = defaultdict(list)
    for i, key in enumerate(groups):
        members[key].append(i)
    out = [0.0] * len(values)
    for idx in members.values():
        lo, hi = min(values[i] for i in idx), max(values[i] for i in idx)
        for i in idx:
            out[i] = (values[i] - lo) / (hi - lo + eps)
    return out


def unit_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ||a/|a| - b/|b|||, in [0, 2]."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.linalg.norm(a - b, axis=1)


def quality_penalty(skating: float, jerk: float, goal_skating: float, goal_jerk: float) -> float:
    """Foot skating and jitter beyond the ground truth's, squashed to [0, 1); 0 when the motion is as clean."""
    extra_skating = max(0.0, skating - goal_skating)
    extra_jitter = max(0.0, math.log((jerk + JITTER_FLOOR) / (goal_jerk + JITTER_FLOOR)))
    return math.tanh(extra_skating + extra_jitter)


def duration_penalty(frames: int, goal_frames: int) -> float:
    """tanh(|log(T / T_goal)|), in [0, 1): 0 at the ground truth's duration, symmetric in longer and shorter."""
    return math.tanh(abs(math.log(frames / goal_frames)))


@dataclass(frozen=True)
class Goal:
    """What a prompt's completions are scored against: its ground-truth motion, embedded and measured."""
    embedding: np.ndarray
    skating: float
    jitter: float
    frames: int


def per_length(fn: Callable[[list], Sequence], items: Sequence) -> list:
    """`fn` over `items` with one call per distinct length, results back in order: batched, yet every result is
    what `fn` gives the item alone. Padding a batch to its longest item would change the convolutions at the end of
    the shorter ones (the VQ-VAE decoder's, and the evaluator's movement encoder's by up to 0.02 in distance)."""
    by_length = defaultdict(list)
    for i, item in enumerate(items):
        by_length[len(item)].append(i)
    out = [None] * len(items)
    for idx in by_length.values():
        for i, result in zip(idx, fn([items[i] for i in idx])):
            out[i] = result
    return out


def decode_codes(motion_tokenizer, code_lists: list[list[int]]) -> np.ndarray:
    """Codes of equal length (B, N) -> de-normalised features (B, 4N, D)."""
    batch = torch.tensor(code_lists, device=motion_tokenizer.device)
    return motion_tokenizer.normalizer.denormalize(motion_tokenizer.model.decode(batch).float().cpu().numpy())


class MotionRewards:
    """The motion terms over one shared computation per batch (trl calls each term on the same completions).

    `data_dir` is the HumanML3D-layout folder the ground-truth motions (`motion` column: a clip name, with an
    optional `span` column [start, stop) in feature frames) are read from. `round_alignment` decodes and embeds
    every round, not only the final one, so it is computed only when `every_round` is set (a run that weights it);
    otherwise it keeps its worst value."""

    def __init__(self, motion_tokenizer, evaluator, data_dir: str | Path, fps: float = 20.0, norm_in_group: bool = True,
                 every_round: bool = True):
        self.motion_tokenizer, self.evaluator = motion_tokenizer, evaluator
        self.data_dir, self.fps, self.norm_in_group = Path(data_dir), fps, norm_in_group
        self.every_round = every_round
        self.nb_code = motion_tokenizer.config.nb_code
        self.reads_pos_tokens = getattr(evaluator, "reads_pos_tokens", False)
        self._goals: dict[tuple, Goal] = {}
        self._last: tuple[tuple, tuple[dict[str, list[float]], list[int]]] | None = None   # (batch, result)

    # -- the reward functions (trl names each by its __name__) ------------------------------------------------------
    def tm_distance(self, prompts, completions, **columns) -> list[float]:
        return self._term("tm_distance", prompts, completions, columns)

    def mm_distance(self, prompts, completions, **columns) -> list[float]:
        return self._term("mm_distance", prompts, completions, columns)

    def round_alignment(self, prompts, completions, **columns) -> list[float]:
        return self._term("round_alignment", prompts, completions, columns)

    def motion_quality(self, prompts, completions, **columns) -> list[float]:
        return self._term("motion_quality", prompts, completions, columns)

    def duration(self, prompts, completions, **columns) -> list[float]:
        return self._term("duration", prompts, completions, columns)

    def functions(self) -> dict[str, Callable]:
        return {term: getattr(self, term) for term in TERMS}

    # -- the shared computation --------------------------------------------------------------------------------------
    def _term(self, term: str, prompts, completions, columns: dict) -> list[float]:
        raw, valid = self.raw(prompts, completions, columns["caption"], columns["motion"], columns.get("span"),
                              columns.get("caption_tokens"))
        if columns.get("log_metric") is not None and valid:
            columns["log_metric"](f"raw/{term}", float(np.mean([raw[term][i] for i in valid])))
        return minmax_in_groups(raw[term], prompts) if self.norm_in_group else raw[term]

    def raw(self, prompts, completions, caption, motion, span=None, caption_tokens=None):
        """({term: raw values}, indices of completions with a final motion); the last batch is remembered."""
        key = (tuple(prompts), tuple(completions), tuple(caption), tuple(motion), str(span))
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        n = len(completions)
        span = span if span is not None else [None] * n
        texts = caption_tokens if self.reads_pos_tokens else caption
        codes = [final_codes(c, self.nb_code) for c in completions]
        valid = [i for i in range(n) if codes[i]]
        raw = {term: [WORST[term]] * n for term in TERMS}
        if valid:
            goals = self.goals([(motion[i], tuple(span[i]) if span[i] is not None else None) for i in valid])
            with torch.inference_mode():
                features = per_length(partial(decode_codes, self.motion_tokenizer), [codes[i] for i in valid])
                text_emb = self.evaluator.embed_texts([texts[i] for i in valid])
                motion_emb = np.stack(per_length(self.evaluator.embed_motions, features))
            goal_emb = np.stack([g.embedding for g in goals])
            tm, mm = unit_distances(text_emb, motion_emb), unit_distances(goal_emb, motion_emb)
            if self.every_round:
                raw["round_alignment"] = self._round_alignment(completions, valid, text_emb)
            for k, (i, feats, goal) in enumerate(zip(valid, features, goals)):
                joints = recover_from_ric(feats)
                raw["tm_distance"][i] = -float(tm[k])
                raw["mm_distance"][i] = -float(mm[k])
                raw["motion_quality"][i] = -quality_penalty(foot_skating_ratio(joints, self.fps),
                                                            jitter(joints, self.fps), goal.skating, goal.jitter)
                raw["duration"][i] = -duration_penalty(len(feats), goal.frames)
        self._last = (key, (raw, valid))
        return raw, valid

    def _round_alignment(self, completions, valid: list[int], text_emb: np.ndarray) -> list[float]:
        """-mean text-motion distance over each completion's rounds (`text_emb` rows follow `valid`)."""
        owners, codes = [], []
        for k, i in enumerate(valid):
            for c in round_codes(completions[i], self.nb_code):
                owners.append(k)
                codes.append(c)
        out = [WORST["round_alignment"]] * len(completions)
        if not codes:   # a final span outside every round (no `[generate]`): nothing to score per round
            return out
        owners = np.array(owners)
        with torch.inference_mode():
            features = per_length(partial(decode_codes, self.motion_tokenizer), codes)
            distances = unit_distances(text_emb[owners], np.stack(per_length(self.evaluator.embed_motions, features)))
        for k, i in enumerate(valid):
            mine = distances[owners == k]
            if len(mine):
                out[i] = -float(mine.mean())
        return out

    def goals(self, keys: list[tuple[str, tuple | None]]) -> list[Goal]:
        """Ground-truth motions by (clip name, span), measured once and cached."""
        new = list(dict.fromkeys(k for k in keys if k not in self._goals))
        if new:
            motions = []
            for name, span in new:
                features = np.load(self.data_dir / "new_joint_vecs" / f"{name}.npy").astype(np.float32)
                motions.append(features[span[0]:span[1]] if span is not None else features)
            with torch.inference_mode():
                embeddings = per_length(self.evaluator.embed_motions, motions)
            for k, features, emb in zip(new, motions, embeddings):
                joints = recover_from_ric(features)
                self._goals[k] = Goal(emb, foot_skating_ratio(joints, self.fps), jitter(joints, self.fps), len(features))
        return [self._goals[k] for k in keys]
