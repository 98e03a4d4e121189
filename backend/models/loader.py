"""One loader for every model the loop serves: the built-in model, an own checkpoint folder, or the released weights.

A model folder holds the motion tokenizer files at its top (`vqvae.safetensors`, `vqvae_config.json`,
`mean.npy`, `std.npy`, see backend/models/motion_tokenizer.py) and the motion LLM in `llm/` as written by
`save_pretrained` (`config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`).
A release folder holds `gemma-2-2b-it/`, one IRG-MotionLLM checkpoint file, `vqvae.pth`, `mean.npy`, `std.npy`
(read by backend/models/release.py, which documents every checkpoint form).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from backend.models.motion_llm import MotionTokenIds, motion_token_ids
from backend.models.motion_tokenizer import CONFIG_FILE, MEAN_FILE, STD_FILE, WEIGHTS_FILE, MotionTokenizer
from backend.models.release import (RELEASE_BASE, RELEASE_VQ, ReleaseError, describe_missing, load_release,
                                    missing_release_files, random_release_model, release_checkpoints)
from backend.prompts import PromptError
from backend.vocabulary import Vocabulary, tokenizer_words

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
LLM_DIR = "llm"
LLM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
LIMITS_FILE = "loop_limits.json"   # optional, in llm/: overrides MotionModel's limits


class ModelLoadError(ReleaseError):
    """A model folder that cannot be loaded; the message names every missing file."""


@dataclass
class FittedPrompt:
    text: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class MotionModel:
    """The motion LLM, its tokenizer, the motion tokenizer (VQ-VAE) and the loop's limits."""

    model_id: str
    device: str
    lm: torch.nn.Module
    tokenizer: PreTrainedTokenizerFast
    motion_ids: MotionTokenIds
    motion_tokenizer: MotionTokenizer
    vocabulary: Vocabulary | None       # word-level models: maps unknown words to known ones
    fps: float = 20.0
    min_seconds: float = 1.0
    max_seconds: float = 9.8            # 196 frames, HumanML3D's longest clip
    max_prompt_chars: int = 300
    max_rounds_limit: int = 5
    notes: list[str] = field(default_factory=list)   # what loading skipped or ignored (release checkpoints)

    @property
    def frames_per_code(self) -> int:
        return self.motion_tokenizer.config.downsample

    def encode(self, text: str, bos: bool = False) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ([self.tokenizer.bos_token_id] if bos else []) + ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def joints_from_codes(self, codes: list[int]) -> np.ndarray:
        with torch.inference_mode():
            return self.motion_tokenizer.joints_from_codes(codes)

    def fit_text(self, text: str, what: str = "prompt") -> FittedPrompt:
        """Check, truncate and map user text onto what the model can read (PromptError when unusable)."""
        if not isinstance(text, str) or not text.strip():
            raise PromptError(f"the {what} is empty: describe the motion, e.g. \"a person jumps forward\"")
        text, warnings = " ".join(text.split()), []
        if len(text) > self.max_prompt_chars:
            cut = text[: self.max_prompt_chars].rsplit(" ", 1)[0] or text[: self.max_prompt_chars]
            warnings.append(f"the {what} has {len(text)} characters; {self.model_id} reads at most "
                            f"{self.max_prompt_chars}, so it was cut to \"{cut}\"")
            text = cut
        if self.vocabulary is None:
            return FittedPrompt(text, warnings)
        fitted = self.vocabulary.fit(text)
        if not any(w in self.vocabulary.words for w in re.findall(r"[A-Za-z']+", fitted.text)):
            raise PromptError(f"{self.model_id} knows none of the words of the {what} ({', '.join(fitted.unknown)}); "
                              "describe the motion with simple words, e.g. \"a person jumps forward\"")
        return FittedPrompt(fitted.text, warnings + fitted.notes)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} was asked for but CUDA is not available; use --device cpu")
    return device


def missing_files(folder: Path) -> list[str]:
    needed = [WEIGHTS_FILE, CONFIG_FILE, MEAN_FILE, STD_FILE] + [f"{LLM_DIR}/{name}" for name in LLM_FILES]
    return [name for name in needed if not (folder / name).is_file()]


def is_release_folder(folder: Path) -> bool:
    """No `llm/` and any piece of the release (gemma-2-2b-it/, vqvae.pth or a checkpoint file at the top)."""
    if (folder / LLM_DIR).is_dir():
        return False
    return (folder / RELEASE_BASE).is_dir() or (folder / RELEASE_VQ).is_file() or bool(release_checkpoints(folder))


def load_model(source: str = "builtin", device: str = "auto", cpu_threads: int | None = 1,
               attn: str | None = None) -> MotionModel:
    """The built-in model (`"builtin"`), a model folder, a release folder (reference section 2.3) or `"random-2b"`
    (a random Gemma-2 of the 2B shape, for speed tests); raises ModelLoadError naming each missing file and
    where it comes from.

    On the CPU, torch's thread count is set to `cpu_threads` (None leaves it): token-by-token decoding of a
    small model is fastest on one thread, and extra threads spin against other work on a shared machine.
    `attn` picks the attention of release models (default: flash-attention 2 on CUDA when installed, else eager)."""
    if source == "random-2b":
        device = resolve_device(device)
        if device == "cpu" and cpu_threads is not None:
            torch.set_num_threads(cpu_threads)
        return random_release_model(device, attn=attn)
    folder = BUILTIN_DIR if source == "builtin" else Path(source).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(f"model folder {folder} does not exist")
    release = is_release_folder(folder)
    if release:
        missing = missing_release_files(folder)
        if missing:
            raise ModelLoadError(describe_missing(folder, missing))
    else:
        missing = missing_files(folder)
        if missing:
            message = f"{folder} is not a complete model folder; missing: " + ", ".join(missing)
            if not any(folder.iterdir()):
                message += ("\nor, for the released IRG-MotionLLM weights:\n"
                            + "\n".join(f"  - {m}" for m in missing_release_files(folder)))
            raise ModelLoadError(message)
    device = resolve_device(device)
    if device == "cpu" and cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    if release:
        try:
            return load_release(folder, device, attn=attn)
        except ModelLoadError:
            raise
        except ReleaseError as exc:
            raise ModelLoadError(str(exc)) from exc
    llm_dir = folder / LLM_DIR
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(llm_dir))
    try:
        ids = motion_token_ids(tokenizer)
    except ValueError as exc:
        raise ModelLoadError(f"{llm_dir}: {exc}") from exc
    lm = AutoModelForCausalLM.from_pretrained(str(llm_dir), dtype=torch.float32).to(device).eval()
    if lm.get_input_embeddings().num_embeddings != len(tokenizer):
        raise ModelLoadError(f"{llm_dir}: the model has {lm.get_input_embeddings().num_embeddings} token rows "
                             f"but the tokenizer {len(tokenizer)} tokens")
    motion_tokenizer = MotionTokenizer.load(folder, device=device)
    word_level = type(tokenizer.backend_tokenizer.model).__name__ == "WordLevel"
    limits = json.loads((llm_dir / LIMITS_FILE).read_text()) if (llm_dir / LIMITS_FILE).is_file() else {}
    return MotionModel(model_id="builtin" if source == "builtin" else folder.name, device=device, lm=lm,
                       tokenizer=tokenizer, motion_ids=ids, motion_tokenizer=motion_tokenizer,
                       vocabulary=Vocabulary(tokenizer_words(tokenizer)) if word_level else None, **limits)
