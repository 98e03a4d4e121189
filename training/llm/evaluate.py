"""Does the loop give motions that match their prompts? Label match on held-out corpus prompts.

A 1-nearest-neighbour classifier over a motion descriptor (HumanML3D features resampled to a few time
bins), fitted on the train split's clips, names the action sequence of a motion ("walk > sit_down",
overlays as "run+point"). For each held-out prompt the loop runs greedily; its first and final motions
are classified and compared with the prompt's true label. Chance is the accuracy of guessing by the
train prior. Also: of the prompts whose first motion is wrong, how many got a second round.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from backend.loop import LoopOptions, LoopSession
from backend.motion.features import extract_features
from training.corpus.labels import Label
from training.llm.data import read_captions, read_labels, read_split

BINS = 8


def action_class(label: Label) -> str:
    return " > ".join(s.action.name + (f"+{s.overlay.name}" if s.overlay else "") for s in label.segments)


def descriptor(features: np.ndarray) -> np.ndarray:
    """Root velocities, height and joint positions (RIC) averaged in BINS time bins, flattened."""
    f = np.asarray(features, dtype=np.float64)[:, :67]
    bins = np.array_split(f, BINS) if len(f) >= BINS else [f] * BINS
    return np.concatenate([b.mean(0) for b in bins])


class NearestLabel:
    """1-NN over standardised descriptors."""

    def __init__(self, descriptors: np.ndarray, classes: list[str]):
        self.mean, self.std = descriptors.mean(0), descriptors.std(0) + 1e-6
        self.x = (descriptors - self.mean) / self.std
        self.classes = classes

    def __call__(self, joints: np.ndarray) -> str:
        d = (descriptor(extract_features(joints).features) - self.mean) / self.std
        return self.classes[int(np.argmin(((self.x - d) ** 2).sum(1)))]


def first_action(action_sequence: str) -> str:
    return action_sequence.split(" > ")[0].split("+")[0]


@dataclass
class LoopEval:
    prompts: int
    first_accuracy: float              # first round's action sequence = the prompt's
    final_accuracy: float              # final round's action sequence = the prompt's
    chance: float                      # guessing by the train prior
    final_first_action_accuracy: float # final round's first action = the prompt's first action
    first_action_chance: float
    classifier_accuracy_on_real_clips: float
    mean_rounds: float
    first_wrong: int
    first_wrong_with_second_round: int
    errors: int
    seconds_per_prompt: float


def fit_classifier(corpus: Path, limit: int = 1500) -> tuple[NearestLabel, dict[str, Label]]:
    labels = read_labels(corpus)
    names = read_split(corpus, "train")[:limit]
    x = np.stack([descriptor(np.load(corpus / "new_joint_vecs" / f"{n}.npy")) for n in names])
    return NearestLabel(x, [action_class(labels[n]) for n in names]), labels


def evaluate(model, corpus: str | Path, count: int = 200, max_rounds: int = 3, log=print) -> LoopEval:
    corpus = Path(corpus)
    classify, labels = fit_classifier(corpus)
    train_classes = classify.classes
    names = read_split(corpus, "test")[:count]
    prior = {c: train_classes.count(c) / len(train_classes) for c in set(train_classes)}
    truth = [action_class(labels[n]) for n in names]
    chance = float(np.mean([prior.get(t, 0.0) for t in truth]))
    action_prior = {}
    for c in train_classes:
        action_prior[first_action(c)] = action_prior.get(first_action(c), 0.0) + 1 / len(train_classes)
    action_chance = float(np.mean([action_prior.get(first_action(t), 0.0) for t in truth]))
    real = np.mean([classify(np.load(corpus / "new_joints" / f"{n}.npy")) == t for n, t in zip(names, truth)])
    first_ok = final_ok = action_ok = rounds = first_wrong = second = errors = 0
    start = time.perf_counter()
    for i, (name, want) in enumerate(zip(names, truth)):
        seconds = float(np.clip(labels[name].duration or 4.0, model.min_seconds, model.max_seconds))
        caption = read_captions(corpus / "texts" / f"{name}.txt")[0]
        result = list(LoopSession(model, caption, LoopOptions(seconds=seconds, max_rounds=max_rounds)).rounds())
        good = [r for r in result if not r.error]
        errors += len(result) - len(good)
        rounds += len(result)
        if not good:
            continue
        first = classify(good[0].joints) == want
        first_ok += first
        final = classify(good[-1].joints)
        final_ok += final == want
        action_ok += first_action(final) == first_action(want)
        if not first:
            first_wrong += 1
            second += len(result) > 1
        if (i + 1) % 25 == 0:
            log(f"{i + 1}/{len(names)}: first {first_ok / (i + 1):.3f} final {final_ok / (i + 1):.3f}")
    n = len(names)
    return LoopEval(prompts=n, first_accuracy=first_ok / n, final_accuracy=final_ok / n, chance=chance,
                    final_first_action_accuracy=action_ok / n, first_action_chance=action_chance,
                    classifier_accuracy_on_real_clips=float(real), mean_rounds=rounds / n, first_wrong=first_wrong,
                    first_wrong_with_second_round=second, errors=errors,
                    seconds_per_prompt=(time.perf_counter() - start) / n)


def write_report(result: LoopEval, path: str | Path) -> None:
    Path(path).write_text(json.dumps(asdict(result), indent=2) + "\n")
