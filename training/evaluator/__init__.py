"""Text-motion evaluators: the project's own contrastive one (model.py, shipped in builtin/) and the
standard Guo et al. networks (guo.py) for a local copy of their weights.

    from training.evaluator import load_evaluator
    evaluator = load_evaluator()            # the shipped one; or load_evaluator(folder)
    evaluator.embed_texts(captions), evaluator.embed_motions(features), evaluator.similarity(...)
"""
from __future__ import annotations

from pathlib import Path


def builtin_dir() -> Path:
    """The evaluator shipped with the project, trained on the procedural corpus."""
    return Path(__file__).parent / "builtin"


def load_evaluator(folder: str | Path | None = None):
    """An Evaluator for a folder written by `irg-motion train-evaluator` (default: the shipped one), or a
    GuoEvaluator for a folder holding the Guo et al. checkpoint (checkpoints/t2m/text_mot_match/...)."""
    from training.evaluator import guo
    from training.evaluator.model import Evaluator

    folder = builtin_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such evaluator folder; train one with `irg-motion train-evaluator` "
                                "or pass training/evaluator/builtin")
    if (folder / guo.CHECKPOINT).exists() or (folder / "glove").is_dir():
        return guo.GuoEvaluator.load(folder)
    return Evaluator.load(folder)
