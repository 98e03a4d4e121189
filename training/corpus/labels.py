"""Structured labels: what a clip does, action by action, with every parameter. The data engine turns the
differences between two labels into exact assessments ("waves the left hand, but the prompt asks for the right")."""
from __future__ import annotations

from dataclasses import dataclass, field

from .primitives import all_primitives


@dataclass(frozen=True)
class Action:
    name: str
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"action": self.name, "params": dict(sorted(self.params.items()))}


@dataclass
class Segment:
    action: Action
    overlay: Action | None = None  # an upper-body action layered on this one ("waves while walking")
    start: float | None = None     # seconds, filled in when the clip is generated
    end: float | None = None

    def to_dict(self) -> dict:
        out = self.action.to_dict()
        if self.overlay is not None:
            out["overlay"] = self.overlay.to_dict()
        if self.start is not None:
            out["start"], out["end"] = round(self.start, 2), round(self.end, 2)
        return out


@dataclass
class Label:
    segments: list[Segment]
    duration: float | None = None

    def to_dict(self) -> dict:
        out: dict = {"segments": [s.to_dict() for s in self.segments]}
        if self.duration is not None:
            out["duration"] = round(self.duration, 2)
        return out

    @staticmethod
    def from_dict(data: dict) -> "Label":
        known = all_primitives()
        segments = []
        for raw in data["segments"]:
            for item in (raw, raw.get("overlay")):
                if item is not None and item["action"] not in known:
                    raise ValueError(f"unknown action {item['action']!r}; known: {', '.join(sorted(known))}")
            overlay = raw.get("overlay")
            segments.append(Segment(Action(raw["action"], dict(raw.get("params", {}))),
                                    Action(overlay["action"], dict(overlay.get("params", {}))) if overlay else None,
                                    raw.get("start"), raw.get("end")))
        return Label(segments, data.get("duration"))

    def actions(self) -> list[Action]:
        """Every action, overlays included, in order."""
        out = []
        for s in self.segments:
            out.append(s.action)
            if s.overlay is not None:
                out.append(s.overlay)
        return out


def _readable(name: str) -> str:
    return name.replace("_", " ")


def _action_difference(where: str, a: Action, b: Action) -> list[str]:
    if a.name != b.name:
        return [f"{where}: the motion does '{_readable(a.name)}' but the prompt asks for '{_readable(b.name)}'"]
    out = []
    for key in sorted(set(a.params) | set(b.params)):
        va, vb = a.params.get(key), b.params.get(key)
        if va != vb:
            out.append(f"{where}: the {_readable(a.name)} has {key} {va} but the prompt asks for {key} {vb}")
    return out


def describe_difference(label_a: Label, label_b: Label) -> list[str]:
    """Readable differences of label_a (the motion) against label_b (the prompt); empty when they agree."""
    out = []
    seg_a, seg_b = label_a.segments, label_b.segments
    if len(seg_a) != len(seg_b):
        out.append(f"the motion has {len(seg_a)} action(s) but the prompt asks for {len(seg_b)}")
    for i, (a, b) in enumerate(zip(seg_a, seg_b)):
        where = f"action {i + 1}"
        out += _action_difference(where, a.action, b.action)
        if a.overlay is None and b.overlay is not None:
            out.append(f"{where}: the prompt also asks to {_readable(b.overlay.name)} at the same time, the motion does not")
        elif a.overlay is not None and b.overlay is None:
            out.append(f"{where}: the motion also does '{_readable(a.overlay.name)}', which the prompt does not ask for")
        elif a.overlay is not None and b.overlay is not None:
            out += _action_difference(f"{where} (layered)", a.overlay, b.overlay)
    for extra in seg_a[len(seg_b):]:
        out.append(f"the motion adds '{_readable(extra.action.name)}' at the end")
    for missing in seg_b[len(seg_a):]:
        out.append(f"the motion is missing '{_readable(missing.action.name)}'")
    return out
