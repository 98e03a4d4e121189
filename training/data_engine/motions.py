"""The motion instances of a HumanML3D-layout data set, as the release's annotations name them.

An instance is a motion file plus a time span (`f_tag`, `to_tag` in seconds; 0.0/0.0 is the whole clip)
with the captions written for that span: whole-clip captions share one instance, each timed caption of
`texts/NAME.txt` (`caption#tokens#from#to`) makes its own, like the release's `meta_inst_name`s.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.corpus.labels import Label
from training.evaluator.data import FPS, parse_text_line
from training.llm.data import read_labels, read_split


@dataclass(eq=False)
class MotionInstance:
    name: str                     # the file stem in new_joint_vecs/ (and texts/)
    f_tag: float
    to_tag: float
    captions: list[str]
    tokens: list[str]             # the data set's `word/POS` tokens, one string per caption
    features: np.ndarray = field(repr=False)   # (T, D) unnormalised, cut to the span
    label: Label | None = None    # procedural corpus only (labels.jsonl)

    @property
    def key(self) -> str:
        """A unique id: the name for a whole clip, `NAME#from#to` for a span."""
        return self.name if self.whole else f"{self.name}#{self.f_tag:g}#{self.to_tag:g}"

    @property
    def whole(self) -> bool:
        return not self.f_tag < self.to_tag

    @property
    def base_name(self) -> str:
        """HumanML3D's mirrored clips are `M` + the original's name; both show the same motion."""
        return self.name[1:] if self.name.startswith("M") else self.name

    def ref(self) -> dict:
        """The release's motion reference: `{motion_name, f_tag, to_tag}`."""
        return {"motion_name": self.name, "f_tag": float(self.f_tag), "to_tag": float(self.to_tag)}


def check_data_dir(data_dir: str | Path, split: str) -> Path:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such data folder; pass --data a HumanML3D-layout folder "
                                "(write one with `irg-motion corpus`)")
    for need in ("new_joint_vecs", "texts", f"{split}.txt"):
        if not (data_dir / need).exists():
            raise FileNotFoundError(f"{data_dir / need}: missing; a HumanML3D-layout folder has new_joint_vecs/, "
                                    f"texts/ and {split}.txt")
    return data_dir


def load_motions(data_dir: str | Path, split: str, labels: bool = False, min_frames: int = 4) -> list[MotionInstance]:
    """Every instance of `split` with at least `min_frames` frames. `labels=True` attaches labels.jsonl's
    labels (the procedural corpus) and fails with the file's name when it is missing or incomplete."""
    data_dir = check_data_dir(data_dir, split)
    label_of: dict[str, Label] = {}
    if labels:
        if not (data_dir / "labels.jsonl").is_file():
            raise FileNotFoundError(f"{data_dir / 'labels.jsonl'}: missing; the procedural annotator needs the "
                                    "labels of a corpus written by `irg-motion corpus`; for another data set use "
                                    "--annotator llm --llm PATH")
        label_of = read_labels(data_dir)
    out = []
    for name in read_split(data_dir, split):
        vec_path, text_path = data_dir / "new_joint_vecs" / f"{name}.npy", data_dir / "texts" / f"{name}.txt"
        if not vec_path.is_file() or not text_path.is_file():
            continue   # HumanML3D's own split files list a few clips that were never processed
        if labels and name not in label_of:
            raise ValueError(f"{data_dir / 'labels.jsonl'}: no label for clip {name}; rewrite the corpus with "
                             "`irg-motion corpus`")
        motion = np.load(vec_path).astype(np.float32)
        spans: dict[tuple[float, float], tuple[list[str], list[str]]] = {}
        for line in text_path.read_text().splitlines():
            if line.strip():
                caption, start, stop = parse_text_line(line)
                texts, tokens = spans.setdefault((start, stop) if start < stop else (0.0, 0.0), ([], []))
                texts.append(caption.text)
                tokens.append(caption.tokens)
        for (start, stop), (texts, tokens) in spans.items():
            features = motion[int(start * FPS):int(stop * FPS)] if start < stop else motion
            if len(features) >= min_frames:
                out.append(MotionInstance(name, start, stop, texts, tokens, features, label_of.get(name)))
    if not out:
        raise ValueError(f"{data_dir / (split + '.txt')}: no {split} clips with captions and features")
    return out
