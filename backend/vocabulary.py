"""Fitting free text to a word-level model's vocabulary: every unknown word is mapped to a known one or reported.

Mapping order per word: the word itself, its lower case, a small synonym table of motion words, a plain
suffix strip (jumping -> jump, waves -> wave), then the closest known word by edit ratio (difflib). Words
still unknown are kept (the tokenizer reads them as `<unk>`) and named in the notes, never dropped silently.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# Everyday words an animator types -> words a motion corpus tends to use (first known candidate wins).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "hop": ("jump", "jumps"), "hops": ("jumps", "jump"), "leap": ("jump", "jumps"), "leaps": ("jumps", "jump"),
    "stroll": ("walk", "walks"), "strolls": ("walks", "walk"), "stride": ("walk", "walks"), "march": ("walk", "walks"),
    "marches": ("walks", "walk"), "sprint": ("run", "runs"), "sprints": ("runs", "run"), "jog": ("run", "runs"),
    "jogs": ("runs", "run"), "dash": ("run", "runs"), "crouch": ("squat", "squats"), "crouches": ("squats", "squat"),
    "spin": ("turn", "turns"), "spins": ("turns", "turn"), "rotate": ("turn", "turns"), "rotates": ("turns", "turn"),
    "greet": ("wave", "waves"), "greets": ("waves", "wave"), "hello": ("wave", "waves"), "boxing": ("punch", "punches"),
    "strike": ("punch", "punches"), "strikes": ("punches", "punch"), "hit": ("punch", "punches"),
    "hits": ("punches", "punch"), "sit": ("squat", "squats"), "boot": ("kick", "kicks"), "man": ("person",),
    "woman": ("person",), "guy": ("person",), "someone": ("person",), "figure": ("person",), "character": ("person",),
    "human": ("person",), "men": ("person",), "he": ("person",), "she": ("person",), "arm": ("hand",),
    "arms": ("hands",), "fast": ("quickly",), "quick": ("quickly",), "slow": ("slowly",), "rapidly": ("quickly",),
    "backwards": ("backward",), "forwards": ("forward",), "ahead": ("forward",), "twice": ("two",),
    "thrice": ("three",), "counterclockwise": ("left",), "clockwise": ("right",),
}
WORD_RE = re.compile(r"[A-Za-z']+|\d+|[^A-Za-z'\d\s]|\s+")


@dataclass
class FittedText:
    text: str                                   # the text the model reads
    mapped: dict[str, str] = field(default_factory=dict)   # unknown word -> known word used instead
    unknown: list[str] = field(default_factory=list)       # words left unknown (the model cannot read them)

    @property
    def notes(self) -> list[str]:
        notes = [f"'{a}' is not in the model's vocabulary; read as '{b}'" for a, b in self.mapped.items()]
        if self.unknown:
            notes.append("the model does not know " + ", ".join(f"'{w}'" for w in self.unknown)
                         + " and cannot use these words; try simpler motion words")
        return notes


class Vocabulary:
    """The words a model knows, and the mapping of other words onto them."""

    def __init__(self, words: Iterable[str], cutoff: float = 0.8):
        self.words = frozenset(w for w in words if w)
        self._alpha = sorted(w for w in self.words if w.isalpha() and len(w) > 2)
        self.cutoff = cutoff

    def nearest(self, word: str) -> str | None:
        """A known word for `word`, or None."""
        for candidate in (word, word.lower()):
            if candidate in self.words:
                return candidate
        low = word.lower()
        for candidate in SYNONYMS.get(low, ()):
            if candidate in self.words:
                return candidate
        for suffix, repl in (("ing", ""), ("ing", "e"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ly", "")):
            if low.endswith(suffix) and low[: -len(suffix)] + repl in self.words:
                return low[: -len(suffix)] + repl
        close = difflib.get_close_matches(low, self._alpha, n=1, cutoff=self.cutoff)
        return close[0] if close else None

    def fit(self, text: str) -> FittedText:
        out, fitted = [], FittedText(text="")
        for piece in WORD_RE.findall(text):
            if not re.match(r"[A-Za-z'\d]", piece) or piece in self.words:
                out.append(piece)
                continue
            known = self.nearest(piece)
            if known is None:
                if piece not in fitted.unknown:
                    fitted.unknown.append(piece)
                out.append(piece)
            else:
                if known != piece and known != piece.lower():
                    fitted.mapped[piece] = known
                out.append(known)
        fitted.text = "".join(out)
        return fitted


def tokenizer_words(tokenizer) -> list[str]:
    """The plain words of a word-level tokenizer's vocabulary (leading spaces stripped)."""
    return sorted({tok.strip() for tok in tokenizer.get_vocab() if tok.strip() and not tok.startswith("<")})
