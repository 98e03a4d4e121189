"""A small text-motion contrastive evaluator: Guo et al.'s design scaled down, trained with InfoNCE.

    evaluator = Evaluator.load(folder)           # model.safetensors + config.json + vocab.json
    t = evaluator.embed_texts(["a person walks forward."])          # (1, D), unit length
    m = evaluator.embed_motions([features])      # features (T, 263), unnormalised
    s = evaluator.similarity(texts, motions)     # (len(texts), len(motions)) cosine similarities

Motion side: a strided convolutional movement encoder (4x fewer frames) and a bidirectional GRU over
mean/std-normalised features; the statistics are buffers of the model, so they travel with the weights.
Text side: word embeddings learned from scratch over the training captions' vocabulary, a bidirectional
GRU. Both end in the same head and are L2-normalised, so Euclidean distance ranks as cosine similarity.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.nn.utils.rnn import pack_padded_sequence

from backend.config_file import check_keys

FORMAT = "irg-motion-evaluator"
FILES = ("config.json", "vocab.json", "model.safetensors")
PAD, UNK = "<pad>", "<unk>"


@dataclass
class EvaluatorConfig:
    feature_dim: int = 263   # 263 for HumanML3D-style features, 251 for KIT
    vocab_size: int = 2      # set from the training captions
    word_dim: int = 96
    text_width: int = 128
    motion_width: int = 128
    embed_dim: int = 128     # co-embedding size
    dropout: float = 0.1
    max_words: int = 40
    max_frames: int = 196    # longer motions are cut to their first max_frames frames
    unit_length: int = 4     # the movement encoder's temporal downsampling

    @classmethod
    def from_dict(cls, d: dict, source: str) -> "EvaluatorConfig":
        check_keys(d, cls, source)
        return cls(**d)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class Vocabulary:
    """Word <-> id; 0 pads, 1 stands for any word not seen in training."""

    def __init__(self, words_: Sequence[str]):
        if list(words_[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}")
        self.words = list(words_)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Sequence[str]) -> "Vocabulary":
        return cls([PAD, UNK] + sorted({w for t in texts for w in words(t)}))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str, max_words: int) -> list[int]:
        return [self.index.get(w, 1) for w in words(text)][:max_words] or [1]


class SequenceHead(nn.Module):
    """Bidirectional GRU over a padded batch; both final states -> MLP -> co-embedding."""

    def __init__(self, width: int, embed_dim: int):
        super().__init__()
        self.gru = nn.GRU(width, width, batch_first=True, bidirectional=True)
        self.out = nn.Sequential(nn.Linear(2 * width, width), nn.LayerNorm(width), nn.LeakyReLU(0.2),
                                 nn.Linear(width, embed_dim))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed)  # (2 directions, B, width)
        return self.out(torch.cat([last[0], last[1]], dim=-1))


class TextEncoder(nn.Module):
    def __init__(self, c: EvaluatorConfig):
        super().__init__()
        self.embed = nn.Embedding(c.vocab_size, c.word_dim, padding_idx=0)
        self.proj = nn.Linear(c.word_dim, c.text_width)
        self.drop = nn.Dropout(c.dropout)
        self.head = SequenceHead(c.text_width, c.embed_dim)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.proj(self.embed(ids))), lengths)


class MotionEncoder(nn.Module):
    def __init__(self, c: EvaluatorConfig):
        super().__init__()
        self.unit_length = c.unit_length
        self.movement = nn.Sequential(
            nn.Conv1d(c.feature_dim, c.motion_width, 4, 2, 1), nn.Dropout(c.dropout), nn.LeakyReLU(0.2),
            nn.Conv1d(c.motion_width, c.motion_width, 4, 2, 1), nn.Dropout(c.dropout), nn.LeakyReLU(0.2),
        )
        self.head = SequenceHead(c.motion_width, c.embed_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        movements = self.movement(x.transpose(1, 2)).transpose(1, 2)
        return self.head(movements, lengths // self.unit_length)


class TextMotionModel(nn.Module):
    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        self.text = TextEncoder(config)
        self.motion = MotionEncoder(config)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))  # learned InfoNCE temperature
        self.register_buffer("feature_mean", torch.zeros(config.feature_dim))
        self.register_buffer("feature_std", torch.ones(config.feature_dim))

    def encode_text(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(ids, lengths), dim=-1)

    def encode_motion(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """features (B, T, D) unnormalised, zero-padded after `lengths` (multiples of unit_length)."""
        valid = (torch.arange(features.shape[1], device=features.device) < lengths[:, None].to(features.device))
        valid = valid.unsqueeze(-1)
        x = torch.where(valid, (features - self.feature_mean) / self.feature_std, 0.0)
        return F.normalize(self.motion(x, lengths), dim=-1)

    def contrastive_loss(self, text_emb: torch.Tensor, motion_emb: torch.Tensor, same_text: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE over a batch of pairs. `same_text[i, j]` marks other pairs whose caption is
        the same as pair i's: they are not treated as negatives."""
        logits = self.logit_scale.exp().clamp(max=100) * text_emb @ motion_emb.T
        eye = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(same_text.to(logits.device) & ~eye, float("-inf"))
        target = torch.arange(len(logits), device=logits.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def pad_texts(vocab: Vocabulary, texts: Sequence[str], max_words: int) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [vocab.encode(t, max_words) for t in texts]
    ids = torch.zeros(len(encoded), max(map(len, encoded)), dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, :len(e)] = torch.tensor(e)
    return ids, torch.tensor([len(e) for e in encoded])


def pad_motions(motions: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips already cut to multiples of unit_length -> zero-padded (B, T, D) batch and lengths."""
    lengths = [len(m) for m in motions]
    batch = torch.zeros(len(motions), max(lengths), motions[0].shape[1])
    for i, m in enumerate(motions):
        batch[i, :len(m)] = torch.from_numpy(np.asarray(m, np.float32))
    return batch, torch.tensor(lengths)


class Evaluator:
    """A trained TextMotionModel with its vocabulary: the API the rest of the project uses."""

    def __init__(self, model: TextMotionModel, vocab: Vocabulary, source: str = "memory"):
        self.model, self.vocab, self.source = model.eval(), vocab, source
        self.config = model.config
        self.device = model.feature_mean.device   # batches go where the model is (a GPU while training there)

    @classmethod
    def load(cls, folder: str | Path) -> "Evaluator":
        folder = Path(folder)
        missing = [n for n in FILES if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}; an evaluator folder is written by "
                                    "`irg-motion train-evaluator` (training/evaluator/builtin/ ships one)")
        meta = json.loads((folder / "config.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{folder / 'config.json'}: not an {FORMAT} config (format={meta.get('format')!r})")
        config = EvaluatorConfig.from_dict(meta["model"], str(folder / "config.json"))
        vocab = Vocabulary(json.loads((folder / "vocab.json").read_text()))
        if len(vocab) != config.vocab_size:
            raise ValueError(f"{folder}: vocab.json has {len(vocab)} words but config.json says {config.vocab_size}")
        model = TextMotionModel(config)
        model.load_state_dict(load_file(folder / "model.safetensors"))
        return cls(model, vocab, str(folder))

    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "model": asdict(self.config), **(extra or {})}
        (folder / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        (folder / "vocab.json").write_text(json.dumps(self.vocab.words) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, folder / "model.safetensors")
        return folder

    def prepare_motion(self, features: np.ndarray, index: int = 0) -> np.ndarray:
        """Check the width, cut to max_frames and to a multiple of unit_length."""
        c = self.config
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or features.shape[1] != c.feature_dim:
            raise ValueError(f"motion {index} has shape {features.shape} but the evaluator in {self.source} takes "
                             f"(frames, {c.feature_dim}) features; use an evaluator trained on {features.shape[-1]}-d "
                             "features (irg-motion train-evaluator) or pass features of the right data set")
        frames = min(len(features), c.max_frames) // c.unit_length * c.unit_length
        if frames == 0:
            raise ValueError(f"motion {index} has {len(features)} frames; the evaluator needs at least {c.unit_length}")
        return features[:frames]

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        out = [self.model.encode_text(*(t.to(self.device) for t in pad_texts(
                   self.vocab, texts[i:i + batch_size], self.config.max_words)))
               for i in range(0, len(texts), batch_size)]
        return torch.cat(out).cpu().numpy() if out else np.zeros((0, self.config.embed_dim), np.float32)

    @torch.no_grad()
    def embed_motions(self, motions: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Batches hold motions of one length only: the movement convolutions would otherwise read a shorter
        motion's padding, and its embedding would depend on what else is in the batch."""
        prepared = [self.prepare_motion(m, i) for i, m in enumerate(motions)]
        out = np.zeros((len(prepared), self.config.embed_dim), np.float32)
        by_length: dict[int, list[int]] = {}
        for i, m in enumerate(prepared):
            by_length.setdefault(len(m), []).append(i)
        for members in by_length.values():
            for k in range(0, len(members), batch_size):
                chunk = members[k:k + batch_size]
                batch = (t.to(self.device) for t in pad_motions([prepared[i] for i in chunk]))
                out[chunk] = self.model.encode_motion(*batch).cpu().numpy()
        return out

    def similarity(self, texts: Sequence[str], motions: Sequence[np.ndarray]) -> np.ndarray:
        """(len(texts), len(motions)) cosine similarities; the diagonal scores matched pairs."""
        return self.embed_texts(texts) @ self.embed_motions(motions).T
