"""One loader for every model the loop serves: the built-in model, an own checkpoint folder, or the released weights.

A model folder holds the motion tokenizer files at its top (`vqvae.safetensors`, `vqvae_config.json`,
`mean.npy`, `std.npy`, see backend/models/motion_tokenizer.py) and the motion LLM in `llm/` as written by
`save_pretrained` (`config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`).
A release folder holds `gemma-2-2b-it/`, one IRG-MotionLLM checkpoint file, `vqvae.pth`, `mean.npy`, `std.npy`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from backend.models.motion_llm import MotionTokenIds, add_motion_tokens, motion_token_ids
from backend.models.motion_tokenizer import (CONFIG_FILE, MEAN_FILE, STD_FILE, WEIGHTS_FILE, MotionTokenizer,
                                             load_release_vqvae)
from backend.prompts import PromptError
from backend.vocabulary import Vocabulary, tokenizer_words

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
LLM_DIR = "llm"
LLM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
LIMITS_FILE = "loop_limits.json"   # optional, in llm/: overrides MotionModel's limits
# A folder of the released weights: the base model in gemma-2-2b-it/, the IRG checkpoint file at the top,
# and the Motion-Agent VQ-VAE with the evaluator's mean/std (reference section 2.3).
RELEASE_BASE = "gemma-2-2b-it"
RELEASE_VQ = "vqvae.pth"


class ModelLoadError(ValueError):
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


def missing_release_files(folder: Path) -> list[str]:
    needed = [f"{RELEASE_BASE}/config.json", f"{RELEASE_BASE}/tokenizer.json", RELEASE_VQ, MEAN_FILE, STD_FILE]
    missing = [name for name in needed if not (folder / name).is_file()]
    if not release_checkpoints(folder):
        missing.append("the IRG-MotionLLM checkpoint (*.pth, *.pt, *.bin or *.safetensors)")
    return missing


def release_checkpoints(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".pth", ".pt", ".bin", ".safetensors")
                  and p.name != RELEASE_VQ)


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A release LLM checkpoint as a flat tensor dict: `state_dict` unwrapped, `llm.`/`module.` stripped,
    VQ-VAE keys dropped (the VQ-VAE always comes from vqvae.pth, reference section 2.2)."""
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    if any("lora_A" in k for k in state):
        raise ModelLoadError(f"{path.name} holds LoRA adapters only; merge them into the base model first")
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "llm."):
            key = key.removeprefix(prefix)
        if torch.is_tensor(value) and not key.startswith(("net.", "vqvae.")):
            out[key] = value
    return out


def load_release(folder: Path, device: str) -> MotionModel:
    """Released IRG-MotionLLM weights: gemma-2-2b-it + the motion tokens + the checkpoint's weights, looked up
    per parameter as `n`, then `n` without `base_model.model.`/`base_layer.` (reference section 2.2);
    `embeddings`/`lm_head` with 514 rows overwrite the motion rows only."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder / RELEASE_BASE))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    lm = AutoModelForCausalLM.from_pretrained(str(folder / RELEASE_BASE), dtype=dtype, attn_implementation="eager")
    text_vocab = len(tokenizer)
    ids = add_motion_tokens(tokenizer)
    lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    params = dict(lm.named_parameters())
    loaded = set()
    with torch.no_grad():
        for path in release_checkpoints(folder):
            state = read_checkpoint(path)
            for name, param in params.items():
                for key in (name, name.replace("base_model.model.", "").replace("base_layer.", "")):
                    if key in state and state[key].shape == param.shape:
                        param.copy_(state[key].to(param.dtype))
                        loaded.add(name)
                        break
            for key, module in (("embeddings", lm.get_input_embeddings()), ("lm_head", lm.get_output_embeddings())):
                if key in state:
                    rows = state[key].to(module.weight.dtype)
                    target = module.weight[text_vocab:] if len(rows) == ids.nb_code + 2 else module.weight
                    if target.shape != rows.shape:
                        raise ModelLoadError(f"{path.name}: `{key}` has shape {tuple(rows.shape)}, expected "
                                             f"{tuple(target.shape)}")
                    target.copy_(rows)
                    loaded.add(key)
    if not loaded:
        raise ModelLoadError(f"no weight of {', '.join(p.name for p in release_checkpoints(folder))} matches "
                             f"{RELEASE_BASE}; is it an IRG-MotionLLM checkpoint?")
    motion_tokenizer = load_release_vqvae(folder / RELEASE_VQ, folder / MEAN_FILE, folder / STD_FILE, device=device)
    return MotionModel(model_id=f"irg-motionllm:{folder.name}", device=device, lm=lm.to(device).eval(),
                       tokenizer=tokenizer, motion_ids=ids, motion_tokenizer=motion_tokenizer, vocabulary=None,
                       max_prompt_chars=1000)


def load_model(source: str = "builtin", device: str = "auto", cpu_threads: int | None = 1) -> MotionModel:
    """The built-in model (`"builtin"`) or a model folder; raises ModelLoadError naming each missing file.

    On the CPU, torch's thread count is set to `cpu_threads` (None leaves it): token-by-token decoding of a
    small model is fastest on one thread, and extra threads spin against other work on a shared machine."""
    folder = BUILTIN_DIR if source == "builtin" else Path(source).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(f"model folder {folder} does not exist")
    release = not (folder / LLM_DIR).is_dir() and (folder / RELEASE_BASE).is_dir()
    missing = missing_release_files(folder) if release else missing_files(folder)
    if missing:
        raise ModelLoadError(f"{folder} is not a complete model folder; missing: " + ", ".join(missing))
    device = resolve_device(device)
    if device == "cpu" and cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    if release:
        return load_release(folder, device)
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
