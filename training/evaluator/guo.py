"""The standard HumanML3D evaluator (Guo et al. 2022, text-to-motion "text_mot_match"): the networks with
the checkpoint's layer names and shapes, the GloVe word vectoriser, and a loader from a local folder.

    evaluator = GuoEvaluator.load(folder)
    t = evaluator.embed_texts(["a/DET man/NOUN walk/VERB forward/ADV"])   # the data set's word/POS tokens
    m = evaluator.embed_motions([features])                              # (T, 263) unnormalised

The folder holds what the original evaluation scripts download (files are listed in GUO_FILES). The
weights are never shipped here; the project's own evaluator (model.py) needs none of them.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

from training.metrics import euclidean_distances

CHECKPOINT = "checkpoints/t2m/text_mot_match/model/finest.tar"
META = "checkpoints/t2m/VQVAEV3_CB1024_CMT_H1024_NRES3/meta"  # where the IRG / T2M-GPT evaluation reads mean/std
GUO_FILES = {
    CHECKPOINT: "Guo et al.'s evaluator checkpoint (the t2m evaluator archive of EricGuo5513/text-to-motion, "
                "also fetched by T2M-GPT's and IRG-MotionLLM's prepare/download_extractor.sh)",
    "glove/our_vab_data.npy": "the pruned GloVe vectors (prepare/download_glove.sh of the same projects)",
    "glove/our_vab_words.pkl": "the pruned GloVe word list (prepare/download_glove.sh)",
    "glove/our_vab_idx.pkl": "the pruned GloVe word index (prepare/download_glove.sh)",
    f"{META}/mean.npy":
        "the feature mean the evaluation normalises with (HumanML3D's Mean.npy, saved under this name by T2M-GPT)",
    f"{META}/std.npy":
        "the feature std the evaluation normalises with (HumanML3D's Std.npy, saved under this name by T2M-GPT)",
}

POS_ENUMERATOR = {"VERB": 0, "NOUN": 1, "DET": 2, "ADP": 3, "NUM": 4, "AUX": 5, "PRON": 6, "ADJ": 7, "ADV": 8,
                  "Loc_VIP": 9, "Body_VIP": 10, "Obj_VIP": 11, "Act_VIP": 12, "Desc_VIP": 13, "OTHER": 14}
# Words whose POS class the evaluator overrides (the original word lists, in the original order).
VIP_WORDS = {
    "Loc_VIP": ("left", "right", "clockwise", "counterclockwise", "anticlockwise", "forward", "back", "backward",
                "up", "down", "straight", "curve"),
    "Body_VIP": ("arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye", "knee", "shoulder",
                 "thigh"),
    "Obj_VIP": ("stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail", "baseball", "basketball"),
    "Act_VIP": ("walk", "run", "swing", "pick", "bring", "kick", "put", "squat", "throw", "hop", "dance", "jump",
                "turn", "stumble", "dance", "stop", "sit", "lift", "lower", "raise", "wash", "stand", "kneel",
                "stroll", "rub", "bend", "balance", "flap", "jog", "shuffle", "lean", "rotate", "spin", "spread",
                "climb"),
    "Desc_VIP": ("slowly", "carefully", "fast", "careful", "slow", "quickly", "happy", "angry", "sad", "happily",
                 "angrily", "sadly"),
}


@dataclass
class GuoConfig:
    dim_pose: int = 263
    dim_word: int = 300
    dim_pos_ohot: int = len(POS_ENUMERATOR)
    dim_text_hidden: int = 512
    dim_motion_hidden: int = 1024
    dim_coemb_hidden: int = 512
    dim_movement_enc_hidden: int = 512
    dim_movement_latent: int = 512
    max_text_len: int = 20
    unit_length: int = 4
    max_frames: int = 196

    @property
    def embed_dim(self) -> int:
        return self.dim_coemb_hidden


class MovementConvEncoder(nn.Module):
    """Two strided convolutions (4x fewer frames) and a linear layer."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T/4, output)
        return self.out_net(self.main(x.transpose(1, 2)).transpose(1, 2))


class _BiGRUCo(nn.Module):
    """input_emb -> biGRU with a learned initial state -> output_net on both final states."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(nn.Linear(hidden_size * 2, hidden_size), nn.LayerNorm(hidden_size),
                                        nn.LeakyReLU(0.2), nn.Linear(hidden_size, output_size))
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_size))

    def _encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.input_emb(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed, self.hidden.repeat(1, x.shape[0], 1))
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))


class TextEncoderBiGRUCo(_BiGRUCo):
    def __init__(self, word_size: int, pos_size: int, hidden_size: int, output_size: int):
        super().__init__(word_size, hidden_size, output_size)
        self.pos_emb = nn.Linear(pos_size, word_size)

    def forward(self, word_embs: torch.Tensor, pos_onehot: torch.Tensor, cap_lens: torch.Tensor) -> torch.Tensor:
        return self._encode(word_embs + self.pos_emb(pos_onehot), cap_lens)


class MotionEncoderBiGRUCo(_BiGRUCo):
    def forward(self, movements: torch.Tensor, m_lens: torch.Tensor) -> torch.Tensor:
        return self._encode(movements, m_lens)


def build_networks(c: GuoConfig) -> dict[str, nn.Module]:
    """The three networks under their checkpoint keys."""
    return {
        "text_encoder": TextEncoderBiGRUCo(c.dim_word, c.dim_pos_ohot, c.dim_text_hidden, c.dim_coemb_hidden),
        "motion_encoder": MotionEncoderBiGRUCo(c.dim_movement_latent, c.dim_motion_hidden, c.dim_coemb_hidden),
        "movement_encoder": MovementConvEncoder(c.dim_pose - 4, c.dim_movement_enc_hidden, c.dim_movement_latent),
    }


class WordVectorizer:
    """`word/POS` token -> (GloVe vector, POS one-hot); VIP words get their VIP class, unknown words 'unk'/OTHER."""

    def __init__(self, glove_dir: Path):
        vectors = np.load(glove_dir / "our_vab_data.npy")
        with open(glove_dir / "our_vab_words.pkl", "rb") as f:
            words = pickle.load(f)
        with open(glove_dir / "our_vab_idx.pkl", "rb") as f:
            index = pickle.load(f)
        self.vectors = {w: vectors[index[w]].astype(np.float32) for w in words}
        if "unk" not in self.vectors:
            raise ValueError(f"{glove_dir}: the GloVe word list has no 'unk' entry")
        self.vip = {w: cls for cls, ws in reversed(VIP_WORDS.items()) for w in ws}  # the first class listed wins

    @staticmethod
    def one_hot(pos: str) -> np.ndarray:
        v = np.zeros(len(POS_ENUMERATOR), np.float32)
        v[POS_ENUMERATOR.get(pos, POS_ENUMERATOR["OTHER"])] = 1
        return v

    def __getitem__(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        word, _, pos = token.rpartition("/") if "/" in token else (token, "", "OTHER")
        if word not in self.vectors:
            return self.vectors["unk"], self.one_hot("OTHER")
        return self.vectors[word], self.one_hot(self.vip.get(word, pos))


def missing_files(folder: Path) -> list[str]:
    return [f"{name} ({source})" for name, source in GUO_FILES.items() if not (folder / name).is_file()]


class GuoEvaluator:
    """The Guo et al. evaluator behind the same embed_texts / embed_motions API as the project's own."""

    reads_pos_tokens = True  # embed_texts wants the data set's `word/POS` tokens

    def __init__(self, networks: dict[str, nn.Module], vectorizer: WordVectorizer, mean: np.ndarray,
                 std: np.ndarray, config: GuoConfig, source: str):
        self.networks = {k: m.eval() for k, m in networks.items()}
        self.vectorizer, self.mean, self.std, self.config, self.source = vectorizer, mean, std, config, source

    @classmethod
    def load(cls, folder: str | Path, config: GuoConfig | None = None) -> "GuoEvaluator":
        folder, config = Path(folder), config or GuoConfig()
        missing = missing_files(folder)
        if missing:
            raise FileNotFoundError(f"{folder} is not a complete Guo evaluator folder; missing:\n  " + "\n  ".join(missing))
        state = torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=True)
        networks = build_networks(config)
        for key, net in networks.items():
            if key not in state:
                raise ValueError(f"{folder / CHECKPOINT}: no '{key}' entry (has {sorted(state)}); is it text_mot_match/finest.tar?")
            try:
                net.load_state_dict(state[key], strict=True)
            except RuntimeError as exc:
                raise ValueError(f"{folder / CHECKPOINT}: '{key}' does not match the Guo {key} for "
                                 f"{config.dim_pose}-d features: {exc}") from None
        meta = folder / META
        mean, std = np.load(meta / "mean.npy").astype(np.float32), np.load(meta / "std.npy").astype(np.float32)
        if mean.shape != (config.dim_pose,) or std.shape != (config.dim_pose,):
            raise ValueError(f"{meta}: mean/std are {mean.shape}/{std.shape}, expected ({config.dim_pose},)")
        return cls(networks, WordVectorizer(folder / "glove"), mean, std, config, str(folder))

    def _tokens(self, text: str) -> tuple[list[str], int]:
        """`word/POS` tokens as given, or a plain caption's lower-case words (POS unknown: OTHER unless VIP),
        between sos and eos, padded with unk to max_text_len + 2; and the length before padding."""
        tokens = text.split() if "/" in text else [w + "/OTHER" for w in text.lower().replace(".", " ").replace(",", " ").split()]
        tokens = ["sos/OTHER"] + tokens[:self.config.max_text_len] + ["eos/OTHER"]
        return tokens + ["unk/OTHER"] * (self.config.max_text_len + 2 - len(tokens)), len(tokens)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        out = [np.zeros((0, self.config.embed_dim), np.float32)]
        for start in range(0, len(texts), batch_size):
            token_lists, lengths = zip(*(self._tokens(t) for t in texts[start:start + batch_size]))
            pairs = [[self.vectorizer[tok] for tok in toks] for toks in token_lists]
            words = torch.from_numpy(np.array([[w for w, _ in p] for p in pairs]))
            pos = torch.from_numpy(np.array([[o for _, o in p] for p in pairs]))
            out.append(self.networks["text_encoder"](words, pos, torch.tensor(lengths)).numpy())
        return np.concatenate(out)

    def _prepare(self, motion: np.ndarray, index: int) -> np.ndarray:
        """Check the width, cut to max_frames and a multiple of unit_length, normalise."""
        c, m = self.config, np.asarray(motion, np.float32)
        if m.ndim != 2 or m.shape[1] != c.dim_pose:
            raise ValueError(f"motion {index} has shape {m.shape}; the Guo evaluator in {self.source} takes (frames, {c.dim_pose})")
        frames = min(len(m), c.max_frames) // c.unit_length * c.unit_length
        if frames == 0:
            raise ValueError(f"motion {index} has {len(m)} frames; the evaluator needs at least {c.unit_length}")
        return (m[:frames] - self.mean) / self.std

    @torch.no_grad()
    def embed_motions(self, motions: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        c = self.config
        clips = [self._prepare(m, i) for i, m in enumerate(motions)]
        out = [np.zeros((0, c.embed_dim), np.float32)]
        for start in range(0, len(clips), batch_size):
            chunk = clips[start:start + batch_size]
            batch = torch.zeros(len(chunk), c.max_frames, c.dim_pose)
            for i, m in enumerate(chunk):
                batch[i, :len(m)] = torch.from_numpy(m)
            lengths = torch.tensor([len(m) for m in chunk])
            movements = self.networks["movement_encoder"](batch[..., :-4])  # foot contacts are not used
            out.append(self.networks["motion_encoder"](movements, lengths // c.unit_length).numpy())
        return np.concatenate(out)

    def similarity(self, texts: Sequence[str], motions: Sequence[np.ndarray]) -> np.ndarray:
        """(len(texts), len(motions)) negative Euclidean distances (the Guo metrics rank by distance)."""
        return -euclidean_distances(self.embed_texts(texts), self.embed_motions(motions))
