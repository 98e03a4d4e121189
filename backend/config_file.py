"""Settings files: a JSON object whose keys must be fields of a dataclass. Every error names the file (or
`where`, e.g. "vq.json (model)") and what to do, so the trainers' and loaders' configs all fail the same way."""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path


def read_json_object(path: str | Path, template: str) -> dict:
    """The JSON object in `path`; `template` names a file to start from when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file; start from {template}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); fix the file") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config is a JSON object of settings, got {type(data).__name__}")
    return data


def check_keys(data: dict, cls, where: str) -> None:
    """Refuse keys that are not fields of the dataclass `cls` (a typo would otherwise be silently ignored)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object of settings, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown config key{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}")
