"""HumanML3D-style captions from labels: several paraphrases per clip (subjects, synonyms, word order),
and the `word/POS` tokens of the dataset's text files from a small rule-based tagger."""
from __future__ import annotations

import numpy as np

SUBJECTS = {"a person": "their", "someone": "their", "the man": "his", "a man": "his", "the person": "their",
            "a woman": "her", "the woman": "her", "a figure": "its"}
SPEED = {"slow": ["slowly", "at a slow pace"], "fast": ["quickly", "fast", "rapidly"], "normal": [""]}
COUNT = {1: "once", 2: "twice", 3: "three times", 4: "four times"}
NUMBER = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 90: "ninety", 180: "one hundred and eighty"}

# Each action: templates "VERB rest"; {spd} speed adverb, {cnt} count, {side}/{dir}/{amp} parameters,
# {pos} the subject's possessive. The first word is the verb (conjugated per use).
TEMPLATES = {
    "walk": ["walk forward {spd}", "walk {spd} in a straight line", "walk ahead {spd}", "take a few steps forward {spd}"],
    "run": ["run forward {spd}", "run ahead {spd}", "sprint forward"],
    "jog": ["jog forward {spd}", "jog along {spd}", "jog ahead"],
    "sneak": ["sneak forward", "walk forward stealthily", "creep forward crouched"],
    "tiptoe": ["tiptoe forward", "walk forward on {pos} toes", "walk on tiptoes"],
    "march": ["march forward", "march ahead lifting {pos} knees {amp}"],
    "side_step": ["step to the {dir} {cnt}", "sidestep to the {dir}", "shuffle sideways to the {dir}"],
    "walk_backward": ["walk backwards {spd}", "walk backward {spd}", "step backwards {spd}"],
    "walk_circle": ["walk in a {amp} circle to the {dir}", "walk around in a circle {spd}", "walk around in a {amp} circle"],
    "turn": ["turn {deg} degrees to the {dir}", "turn around to the {dir}", "turn to {pos} {dir}"],
    "spin": ["spin around to the {dir} {cnt}", "spin in place {cnt}", "twirl around"],
    "hop": ["hop on {pos} {side} foot {cnt}", "hop {cnt} on the {side} leg", "jump on one foot"],
    "skip": ["skip forward", "skip ahead happily", "skip along"],
    "jump": ["jump {dir} {cnt}", "jump {amp} {dir}", "leap {dir} {cnt}"],
    "climb_stairs": ["walk {dir} the stairs", "climb {dir} {num} steps", "go {dir} a flight of stairs"],
    "wave": ["wave {pos} {side} hand {spd}", "wave with {pos} {side} hand", "wave hello with the {side} hand"],
    "raise_arms": ["raise {pos} {side} arm {dir}", "lift the {side} arm {dir}", "hold {pos} {side} arm {dir}"],
    "clap": ["clap {pos} hands {cnt}", "clap {cnt} {spd}", "clap {pos} hands together"],
    "punch": ["punch with {pos} {side} fist {cnt}", "throw punches with the {side} hand", "punch forward {cnt}"],
    "point": ["point {dir} with {pos} {side} hand", "point the {side} arm {dir}", "point {dir}"],
    "salute": ["salute with {pos} {side} hand", "give a salute", "salute"],
    "stretch_up": ["stretch {pos} arms up", "stretch upward", "reach both arms overhead"],
    "arm_circles": ["make {amp} arm circles {dir}", "circle {pos} arms {dir} {cnt}", "rotate {pos} arms in circles"],
    "throw": ["throw something with {pos} {side} hand", "throw a ball {cnt}", "throw with the {side} arm"],
    "reach_forward": ["reach forward with {pos} {side} hand", "reach out in front", "stretch {pos} {side} arm forward"],
    "shrug": ["shrug {pos} shoulders {cnt}", "shrug", "shrug {cnt}"],
    "hands_on_hips": ["put {pos} hands on {pos} hips", "stand with hands on hips", "place both hands on the hips"],
    "cross_arms": ["cross {pos} arms", "fold {pos} arms", "stand with arms crossed"],
    "scratch_head": ["scratch {pos} head with the {side} hand", "scratch {pos} head", "rub {pos} head"],
    "drink": ["drink from a cup in {pos} {side} hand", "take a drink", "drink something with the {side} hand"],
    "kick": ["kick {dir} with {pos} {side} leg {cnt}", "kick {amp} with the {side} foot", "kick {cnt}"],
    "squat": ["squat {amp} {cnt}", "do {num} squats {spd}", "squat down and stand up {cnt}"],
    "lunge": ["lunge forward with the {side} leg", "do a lunge {cnt}", "step into a lunge with {pos} {side} foot"],
    "sit_down": ["sit down {spd}", "sit down on a chair", "take a seat {spd}"],
    "stand_up": ["stand up {spd}", "get up from the chair", "rise from a seat {spd}"],
    "crouch": ["crouch down and stand back up", "crouch low", "squat down low and get up"],
    "kneel": ["kneel on the {side} knee", "kneel down on one knee", "go down on {pos} {side} knee"],
    "bow": ["bow {amp}", "bow forward", "take a bow"],
    "touch_toes": ["bend down to touch {pos} toes", "touch {pos} toes {cnt}", "bend over and reach for the floor"],
    "jumping_jacks": ["do {num} jumping jacks {spd}", "do jumping jacks", "perform jumping jacks {spd}"],
}
DIRECTION_WORDS = {"in_place": "in place", "forward": "forward", "backward": "backward", "left": "to the left",
                   "right": "to the right", "up": "up", "down": "down", "side": "to the side", "sideways": "sideways",
                   "front": "forward"}
AMP = {"small": "a little", "big": "high", "low": "low", "high": "high", "normal": ""}
AMP_BY_ACTION = {  # how each action says its amplitude
    "bow": {"small": "slightly", "big": "deeply"}, "squat": {"small": "a little", "big": "deeply"},
    "arm_circles": {"small": "small", "big": "big"}, "walk_circle": {"small": "small", "big": "big"},
    "march": {"small": "", "big": "high"}, "wave": {"small": "", "big": "high"},
}
IRREGULAR_ING = {"run": "running", "jog": "jogging", "hop": "hopping", "skip": "skipping", "clap": "clapping",
                 "step": "stepping", "sidestep": "sidestepping", "sit": "sitting", "get": "getting", "put": "putting", "shrug": "shrugging",
                 "rub": "rubbing", "squat": "squatting", "spin": "spinning", "drink": "drinking", "stand": "standing"}
CONNECTORS = [", then ", " and then ", ", after that ", " before ", " and "]
FRONTABLE = ("slowly", "quickly", "rapidly")


def _ing(verb: str) -> str:
    if verb in IRREGULAR_ING:
        return IRREGULAR_ING[verb]
    if verb.endswith("e") and not verb.endswith("ee"):
        return verb[:-1] + "ing"
    return verb + "ing"


def _third(verb: str) -> str:
    if verb == "do":
        return "does"
    if verb == "go":
        return "goes"
    if verb.endswith(("s", "sh", "ch", "x")):
        return verb + "es"
    return verb + "s"


def _fill(template: str, params: dict, pos: str, rng, action: str = "") -> str:
    side = params.get("side", "")
    direction = params.get("direction", "")
    words = {
        "spd": SPEED[params.get("speed", "normal")][int(rng.integers(len(SPEED[params.get("speed", "normal")])))],
        "cnt": COUNT.get(params.get("count", 0), ""), "num": NUMBER.get(params.get("count", params.get("steps", 0)), ""),
        "side": "" if side == "both" else side, "pos": pos,
        "dir": direction if "{dir}" in template and template.split()[0] in ("step", "sidestep", "shuffle", "turn", "spin", "walk", "climb", "go") and direction in ("left", "right", "up", "down") else DIRECTION_WORDS.get(direction, ""),
        "amp": {**AMP, **AMP_BY_ACTION.get(action, {})}.get(params.get("amplitude", params.get("height", "normal")), ""), "deg": NUMBER.get(params.get("angle", 0), ""),
    }
    if side == "both":
        template = template.replace("{side} hand", "hands").replace("{side} arm", "arms").replace("{side} fist", "fists")
    text = " ".join(template.format(**words).split())
    return text.replace("one squats", "one squat").replace("one jumping jacks", "one jumping jack")


def _phrase(action, pos: str, rng, form: str) -> str:
    options = TEMPLATES[action.name]
    template = options[int(rng.integers(len(options)))]
    clauses = []
    for part in template.split(" and "):  # "squat down and stand up": every verb agrees
        verb, _, rest = _fill(part, action.params, pos, rng, action.name).partition(" ")
        clauses.append(f"{_third(verb) if form == 'third' else _ing(verb)} {rest}".strip())
    text = " and ".join(clauses)
    adverb = text.rsplit(" ", 1)[-1]
    if form == "third" and adverb in FRONTABLE and " " in text and rng.random() < 0.4:
        text = f"{adverb} {text.rsplit(' ', 1)[0]}"  # "slowly walks forward" as well as "walks forward slowly"
    return text


def caption(label, rng: np.random.Generator) -> str:
    subjects = list(SUBJECTS)
    subject = subjects[int(rng.integers(len(subjects)))]
    pos = SUBJECTS[subject]
    parts = []
    for seg in label.segments:
        main = _phrase(seg.action, pos, rng, "third")
        if seg.overlay is not None:
            if rng.random() < 0.5:
                main = f"{main} while {_phrase(seg.overlay, pos, rng, 'ing')}"
            else:
                main = f"{_phrase(seg.overlay, pos, rng, 'third')} while {_phrase(seg.action, pos, rng, 'ing')}"
        parts.append(main)
    if len(parts) == 2 and label.segments[0].overlay is None and rng.random() < 0.2:
        # Fronted order: "after walking forward, a person turns around."
        first = _phrase(label.segments[0].action, pos, rng, "ing")
        return f"after {first}, {subject} {parts[1]}."
    text = ("first " if len(parts) > 1 and rng.random() < 0.15 else "") + parts[0]
    for seg, part in zip(label.segments[1:], parts[1:]):
        connector = CONNECTORS[int(rng.integers(len(CONNECTORS)))]
        if connector.strip() == "before":  # "walks forward before turning around"
            part = _phrase(seg.action, pos, rng, "ing")
        text += connector + part
    return f"{subject} {text}."


def caption_label(label, rng: np.random.Generator, count: int = 4) -> list[str]:
    """Up to `count` distinct captions (a few extra tries when paraphrases collide)."""
    out: list[str] = []
    for _ in range(count * 4):
        text = caption(label, rng)
        if text not in out:
            out.append(text)
        if len(out) == count:
            break
    return out


# --- tokens ---------------------------------------------------------------------------------------
POS_WORDS = {
    "DET": "a an the their his her its both each".split(),
    "PRON": "someone something".split(),
    "ADP": "with in on to from at of for around into over".split(),
    "CCONJ": "and".split(), "SCONJ": "while before after".split(),
    "NUM": "one two three four five six ninety hundred eighty".split(),
    "ADV": ("forward ahead slowly quickly fast rapidly then back up down sideways backwards backward stealthily "
            "overhead together once twice low high happily along around out little that straight first slightly deeply").split(),
    "ADJ": "left right big small slow straight few crossed crouched upward".split(),
    "NOUN": ("person man woman figure hand hands arm arms leg foot feet head knee knees toes hips shoulders "
             "fist fists circle circles stairs steps step degrees line pace floor chair seat cup ball flight "
             "salute squats squat jacks jack lunge bow drink tiptoes times jumping front place side hello").split(),
}
_VERB_LEMMAS = {c.split()[0] for options in TEMPLATES.values() for t in options for c in t.split(" and ")} | {"move"}
_VERB_FORMS = {form: v for v in _VERB_LEMMAS for form in (v, _third(v), _ing(v))}
_TAGS = {w: tag for tag, words in POS_WORDS.items() for w in words}


def tag(word: str) -> tuple[str, str]:
    """(lemma, POS) of a lower-case word; 'X' marks a word the tagger does not know."""
    if word in ("jumping", "times") and word in _TAGS:
        return (word.rstrip("s") if word == "times" else word), _TAGS[word]
    if word in _VERB_FORMS and word not in ("step", "steps", "drink", "bow", "salute", "lunge"):
        return _VERB_FORMS[word], "VERB"
    if word in _TAGS:
        tag_ = _TAGS[word]
        lemma = word[:-1] if tag_ == "NOUN" and word.endswith("s") and not word.endswith("ss") else word
        return lemma, tag_
    if word in _VERB_FORMS:
        return _VERB_FORMS[word], "VERB"
    return word, "X"


def tokens(text: str) -> str:
    words = text.lower().replace(",", " ").replace(".", " ").split()
    return " ".join("{}/{}".format(*tag(w)) for w in words)


def text_line(caption_text: str) -> str:
    """One line of a HumanML3D texts/ file: caption#tokens#from#to (0.0 = the whole clip)."""
    return f"{caption_text}#{tokens(caption_text)}#0.0#0.0"
