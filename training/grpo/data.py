"""The GRPO prompt set: one row per caption of a split of a HumanML3D-layout folder.

A row holds the prompt exactly as the product sends it (backend/loop.py: the caption fitted to the model's
vocabulary, then `prompts.trace_context`; the tokenizer adds `<bos>`, as trl's tokenisation does) and what the
rewards need: the caption and its `word/POS` tokens for the evaluator, and the ground-truth motion (clip name
and [start, stop) feature frames; a caption with a time span, as in HumanML3D, scores against that span only).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from backend import prompts
from backend.prompts import PromptError
from training.evaluator.data import FPS, check_data_dir, parse_text_line
from training.llm.data import read_split

MIN_FRAMES, MAX_FRAMES = 40, 199   # the evaluation loader's limits (training/evaluator/data.py)


def prompt_rows(data_dir: str | Path, split: str, fit_text: Callable,
                min_frames: int = MIN_FRAMES, max_frames: int = MAX_FRAMES) -> tuple[list[dict], int]:
    """(rows, captions skipped because the model can read none of their words). `fit_text` is MotionModel.fit_text."""
    data_dir = check_data_dir(data_dir, split)
    rows, skipped = [], 0
    for name in read_split(data_dir, split):
        vec_path, text_path = data_dir / "new_joint_vecs" / f"{name}.npy", data_dir / "texts" / f"{name}.txt"
        if not vec_path.is_file() or not text_path.is_file():
            continue   # HumanML3D's split files list a few clips that were never processed
        frames = np.load(vec_path, mmap_mode="r").shape[0]
        for line in (l for l in text_path.read_text().splitlines() if l.strip()):
            caption, start, stop = parse_text_line(line)
            span = [0, frames] if start == stop == 0.0 else [int(start * FPS), min(int(stop * FPS), frames)]
            if not min_frames <= span[1] - span[0] <= max_frames:
                continue
            try:
                fitted = fit_text(caption.text).text
            except PromptError:
                skipped += 1
                continue
            rows.append({"prompt": prompts.trace_context(fitted), "caption": caption.text,
                         "caption_tokens": caption.tokens, "motion": name, "span": span})
    if not rows:
        raise ValueError(f"{data_dir}: no {split} captions of clips with {min_frames}-{max_frames} frames that the "
                         "model can read; check the folder's texts/ and new_joint_vecs/")
    return rows, skipped
