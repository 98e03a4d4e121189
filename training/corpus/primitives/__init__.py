"""The motion vocabulary: every primitive by name."""
from __future__ import annotations

from .base import Primitive, Start
from .locomotion import LOCOMOTION
from .upper_body import UPPER_BODY
from .whole_body import WHOLE_BODY


def all_primitives() -> dict[str, Primitive]:
    return {p.name: p for p in LOCOMOTION + UPPER_BODY + WHOLE_BODY}


__all__ = ["Primitive", "Start", "all_primitives"]
