"""Exact annotations for the procedural corpus, from its labels, in varied phrasings.

`describe_difference(candidate, goal)` says what differs; the instruction rules of the lite engine
(training/llm/data.py) parse each difference, and here every kind of difference gets several assessment and
refinement phrasings, one picked per use by a seeded rng (the lite engine's own instruction is one of
them). A caption only states some of its label's parameters ("a man waves" says nothing of the hand), so a
parameter difference counts for a caption only when the caption states the goal's value; a candidate with
no difference left for a caption is no negative for it (dropped as `not_in_caption`).
"""
from __future__ import annotations

import random
import re
from typing import Hashable

from training.corpus.captions import AMP, COUNT, DIRECTION_WORDS, NUMBER, SPEED
from training.corpus.labels import Action, Label, describe_difference
from training.llm.data import INSTRUCTION_RULES, MAX_DIFFERENCES, analysis_text, instruction

from .annotators import GOAL_JUDGEMENT, Judgement
from .checks import CheckLog, judgement_problem, text_problem
from .motions import MotionInstance

# The kinds of difference, in the order of INSTRUCTION_RULES, with the names of each pattern's groups.
KINDS = (
    ("action", ("where", "did", "want")),
    ("param", ("where", "action", "key", "did", "want")),
    ("count", ("did", "want")),
    ("overlay_missing", ("where", "overlay")),
    ("overlay_extra", ("where", "overlay")),
    ("extra_end", ("action",)),
    ("missing_end", ("action",)),
)
assert len(KINDS) == len(INSTRUCTION_RULES), "training/llm/data.py INSTRUCTION_RULES changed: update KINDS"

ASSESSMENTS = {
    "action": ("In {where}, the motion does '{did}' but the prompt asks for '{want}'.",
               "The motion performs '{did}' in {where}, while the goal text asks for '{want}'.",
               "{Where} is wrong: the person does '{did}' instead of '{want}'.",
               "The generated motion shows '{did}' where the goal text wants '{want}'."),
    "param": ("In {where}, the {action} uses {pdid}, but the prompt asks for {pwant}.",
              "The {action} is the right action, but it has {pdid} instead of {pwant}.",
              "The motion does the {action} with {pdid}; the goal text wants {pwant}.",
              "In {where}, the {action} should have {pwant}, not {pdid}."),
    "count": ("The motion has {did} action(s) but the prompt asks for {want}.",
              "The motion strings together {did} action(s), while the goal text describes {want}.",
              "The number of actions is off: the motion has {did} instead of {want}."),
    "overlay_missing": ("In {where}, the prompt also asks for '{overlay}' at the same time, but the motion does not.",
                        "The motion leaves out '{overlay}' during {where}.",
                        "{Where} lacks the layered '{overlay}' that the goal text asks for."),
    "overlay_extra": ("In {where}, the motion also does '{overlay}', which the prompt does not ask for.",
                      "The motion adds '{overlay}' on top of {where}, but the goal text does not mention it.",
                      "During {where} the person also does '{overlay}', which is not in the goal text."),
    "extra_end": ("The motion adds '{action}' at the end.",
                  "After the requested actions, the motion goes on with '{action}', which the goal text does not "
                  "ask for.",
                  "The motion ends with an extra '{action}' that the goal text does not mention."),
    "missing_end": ("The motion is missing '{action}'.",
                    "The motion stops before '{action}', which the goal text asks for at the end.",
                    "The final '{action}' of the goal text never happens."),
}
# The lite engine's instruction (training/llm/data.py `instruction`) is always one more choice.
REFINEMENTS = {
    "action": ("Replace '{did}' with '{want}' in {where}.", "Do '{want}' instead of '{did}' in {where}.",
               "Change {where} to '{want}'."),
    "param": ("Do the {action} with {pwant} instead of {pdid}.", "Change the {action} to {pwant}.",
              "Keep the {action} but give it {pwant}."),
    "count": ("Perform {want} action(s) instead of {did}.", "Change the number of actions from {did} to {want}."),
    "overlay_missing": ("Add '{overlay}' at the same time as {where}.", "Layer '{overlay}' on top of {where}."),
    "overlay_extra": ("Remove the '{overlay}' from {where}.", "Do {where} without the '{overlay}'."),
    "extra_end": ("Stop after the requested actions, without '{action}'.",
                  "Remove the final '{action}' from the motion."),
    "missing_end": ("Finish the motion with '{action}'.", "Append '{action}' after the other actions."),
}
ANALYSES = (
    "The goal is to generate a motion with {n_actions}: {steps}.",
    "The motion should show {steps_then}{in_order}.",
    "To satisfy the goal, the person must perform {steps_then}{in_order}.",
)
DESCRIPTIONS = (
    "a person does {n_actions}: {steps}.",
    "the motion consists of {steps_followed}.",
    "step by step, the person does {steps_then}.",
    "{caption} in detail: {steps_then}.",
)
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight")
# Which difference an assessment names first: the specific ones before the action count they imply.
PRIORITY = ("action", "param", "overlay_missing", "overlay_extra", "missing_end", "extra_end", "count")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
WHERE_RE = re.compile(r"^action (\d+)( \(layered\))?$")


def readable(name: str) -> str:
    return name.replace("_", " ")


def where_phrase(where: str) -> str:
    """describe_difference's `action 2 (layered)` -> `the layered part of the second action`."""
    m = WHERE_RE.match(where)
    if m is None:
        return where
    i = int(m.group(1)) - 1
    action = f"the {ORDINALS[i]} action" if i < len(ORDINALS) else f"action {i + 1}"
    return f"the layered part of {action}" if m.group(2) else action


def param_phrase(key: str, value) -> str:
    v = readable(str(value))
    phrases = {"side": "both sides" if v == "both" else f"the {v} side", "speed": f"{v} speed",
               "duration": f"{v} seconds", "amplitude": f"a {v} amplitude", "direction": f"the direction {v}",
               "count": f"{v} repetition" + ("" if v == "1" else "s"), "angle": f"{v} degrees",
               "height": f"{v} height", "steps": f"{v} steps"}
    return phrases.get(key, f"{readable(key)} {v}")


def value_words(key: str, value) -> set[str]:
    """The words the corpus' captions use for a parameter value (none for what captions never state)."""
    v = str(value)
    n = int(v) if v.isdigit() else None
    if key == "speed":
        return {w for w in SPEED.get(v, []) if w}
    if key in ("count", "steps", "angle"):
        return {v} | {w for w in (COUNT.get(n) if key == "count" else None, NUMBER.get(n)) if w}
    if key == "direction":
        return {readable(v), DIRECTION_WORDS.get(v, readable(v))}
    if key == "amplitude":
        return {v} | ({AMP[v]} if AMP.get(v) else set())
    if key in ("side", "height"):
        return {v} - {"normal"}
    return set()   # duration


def stated(key: str, value, caption: str) -> bool:
    """Whether `caption` states this parameter value."""
    text = caption.lower()
    return any(re.search(rf"\b{re.escape(w)}\b", text) for w in value_words(key, value))


def parse(difference: str) -> tuple[str, dict[str, str]]:
    """A difference sentence -> (kind, fields)."""
    for (pattern, _), (kind, names) in zip(INSTRUCTION_RULES, KINDS):
        m = pattern.match(difference)
        if m is not None:
            return kind, dict(zip(names, m.groups()))
    raise ValueError(f"describe_difference wrote a sentence no rule parses: {difference!r}")


def fill(template: str, fields: dict[str, str]) -> str:
    values = dict(fields)
    if "where" in values:
        values["where"] = where_phrase(values["where"])
        values["Where"] = values["where"][0].upper() + values["where"][1:]
    if "key" in values:
        values["pdid"] = param_phrase(values["key"], values["did"])
        values["pwant"] = param_phrase(values["key"], values["want"])
    return template.format(**values)


def capitalised(text: str) -> str:
    text = text.strip()
    text = text[0].upper() + text[1:] if text else text
    return text if text.endswith(".") else text + "."


def label_signature(label: Label) -> tuple:
    """Equal exactly when describe_difference finds nothing between the labels (times are ignored)."""
    def act(a: Action | None):
        return None if a is None else (a.name, tuple(sorted((k, str(v)) for k, v in a.params.items())))
    return tuple((act(s.action), act(s.overlay)) for s in label.segments)


def action_phrase(action: Action, caption: str | None) -> str:
    """`'wave' (the right side)`: the parameters `caption` states (all of them when caption is None)."""
    params = [param_phrase(k, v) for k, v in sorted(action.params.items()) if caption is None or stated(k, v, caption)]
    return f"'{readable(action.name)}'" + (f" ({', '.join(params)})" if params else "")


def step_values(label: Label, caption: str | None) -> dict[str, str]:
    """The fields of ANALYSES and DESCRIPTIONS for a label (parameters as `action_phrase` picks them)."""
    steps = [action_phrase(s.action, caption) + ("" if s.overlay is None else
                                                 " while doing " + action_phrase(s.overlay, caption))
             for s in label.segments]
    n = len(steps)
    return {"n_actions": f"{NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else n} action" + ("" if n == 1 else "s"),
            "steps": ", ".join(steps), "steps_then": ", then ".join(steps),
            "steps_followed": ", followed by ".join(steps), "in_order": ", in this order" if n > 1 else ""}


class ProceduralAnnotator:
    """Annotations from labels.jsonl; `rng` picks the phrasings (seeded, so a corpus annotates the same way)."""

    needs_labels = True

    def __init__(self, seed: int = 0, max_differences: int = MAX_DIFFERENCES):
        self.rng = random.Random(seed)
        self.max_differences = max_differences
        self.log = CheckLog()
        self.name = "procedural"

    def sameness_key(self, motion: MotionInstance) -> Hashable | None:
        return label_signature(motion.label)

    def visible_differences(self, candidate: Label, goal: Label, caption: str) -> list[tuple[str, dict]]:
        """The differences of the candidate from the goal that `caption` can tell, most specific first."""
        out = []
        for difference in describe_difference(candidate, goal):
            kind, fields = parse(difference)
            if kind != "param" or stated(fields["key"], fields["want"], caption):
                out.append((kind, fields | {"sentence": difference}))
        return sorted(out, key=lambda d: PRIORITY.index(d[0]))

    def phrase(self, differences: list[tuple[str, dict]]) -> Judgement:
        chosen = differences[:self.max_differences]
        assessment = " ".join(capitalised(fill(self.rng.choice(ASSESSMENTS[k]), f)) for k, f in chosen)
        refinement = " ".join(capitalised(self.rng.choice([fill(t, f) for t in REFINEMENTS[k]] +
                                                          [instruction(f["sentence"])]))
                              for k, f in chosen)
        return Judgement(assessment, refinement)

    def judge(self, goal: MotionInstance, caption: str,
              candidates: list[MotionInstance]) -> list[Judgement | None]:
        out = []
        for cand in candidates:
            if cand is goal:
                judgement = GOAL_JUDGEMENT
            else:
                differences = self.visible_differences(cand.label, goal.label, caption)
                judgement = self.phrase(differences) if differences else None
            problem = "not_in_caption" if judgement is None else \
                judgement_problem(judgement.assessment, judgement.refinement, cand is goal)
            out.append(judgement if self.log.record("judgements", problem) else None)
        return out

    def analyses(self, goal: MotionInstance, caption: str) -> list[str]:
        values = step_values(goal.label, caption)
        texts = [analysis_text(caption)] + [t.format(**values) for t in ANALYSES]
        return [t for t in texts if self.log.record("analyses", text_problem(t))]

    def descriptions(self, goal: MotionInstance, caption: str) -> list[str]:
        values = step_values(goal.label, None) | {"caption": caption.strip().rstrip(".") + "."}
        texts = [t.format(**values) for t in DESCRIPTIONS]
        return [t for t in texts if self.log.record("descriptions", text_problem(t))]
