"""The released IRG-MotionLLM weights (reference/irg-motionllm.md sections 1.2, 2): folder layout, every checkpoint
form the release code writes, the LoRA merge, the vocabulary and tying checks, and a random model of the 2B shape.

A release folder:

    DIR/gemma-2-2b-it/      the base model (google/gemma-2-2b-it snapshot: config.json, tokenizer, weights)
    DIR/<checkpoint>        ONE IRG-MotionLLM checkpoint file (*.pth, *.pt, *.bin or *.safetensors)
    DIR/vqvae.pth           Motion-Agent's VQ-VAE ({'net': state_dict})
    DIR/mean.npy, std.npy   the evaluator's feature statistics (263-d for HumanML3D)
    DIR/vqvae_config.json   optional: a VQ-VAE shape other than the release's (e.g. KIT-ML's 251-d input)
    DIR/adapter_config.json optional: `r` and `lora_alpha` of a LoRA-only checkpoint (default scale alpha/r = 1)

Checkpoint forms read (section 2.1): the stage-1/2 `.pth` (`{'epoch', 'state_dict'}` with every Gemma parameter and
full `embeddings`/`lm_head`), the stage-3 trainer `pytorch_model.bin` (`llm.` and `net.vqvae.` prefixes), the
Motion-Agent LoRA-only file (adapter `t2m` or `shared`, plus 514-row `embeddings`/`lm_head`, merged onto the base),
and a merged state dict in safetensors. The VQ-VAE always comes from vqvae.pth (section 2.2, step 5).
"""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma2Config, Gemma2ForCausalLM

from backend.models.motion_llm import (MOTION_TOKEN_RE, NB_CODE, SPECIAL_TOKENS, add_motion_tokens, word_pieces,
                                       word_tokenizer_from_words)
from backend.models.motion_tokenizer import CONFIG_FILE, MEAN_FILE, STD_FILE, MotionTokenizer, load_release_vqvae
from backend.models.vqvae import MotionVQVAE, VQVAEConfig
from backend.motion.normalize import Normalizer

RELEASE_BASE = "gemma-2-2b-it"
RELEASE_VQ = "vqvae.pth"
ADAPTER_CONFIG = "adapter_config.json"
TEXT_VOCAB = 256000                       # Gemma-2's tokenizer
RELEASE_VOCAB = TEXT_VOCAB + 2 + NB_CODE  # 256514: <Motion>, </Motion>, <Motion_0..511>
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
# Files the HF Trainer writes beside pytorch_model.bin that are not weights.
TRAINER_FILES = re.compile(r"^(training_args\.bin|optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state(_\d+)?\.pth)$")
LORA_ADAPTERS = ("shared", "t2m")         # IRG's single adapter, Motion-Agent's text-to-motion adapter
LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(.+)\.lora_([AB])\.([^.]+)\.weight$")

HUB_BASE = "google/gemma-2-2b-it"
HUB_RELEASE = "Lymann/IRG-MotionLLM-HumanML3D"
SOURCE_BASE = (f"{HUB_BASE} from the Hugging Face hub (gated: accept the licence on its page, log in with "
               f"`hf auth login`); the whole snapshot goes in {RELEASE_BASE}/")
SOURCE_CHECKPOINT = (f"the IRG-MotionLLM checkpoint from the Hugging Face hub ({HUB_RELEASE}; KIT-ML: "
                     "Lymann/IRG-MotionLLM-KITML): one .pth/.pt/.bin/.safetensors file at the top of the folder")
SOURCE_VQ = ("Motion-Agent's ckpt/vqvae.pth (the checkpoint link in szqwu/Motion-Agent's README, Google Drive), "
             "copied as is")
SOURCE_STATS = ("the evaluator's checkpoints/t2m/VQVAEV3_CB1024_CMT_H1024_NRES3/meta/{name} (the T2M-GPT extractor "
                "zip fetched by HumanMLLM/IRG-MotionLLM prepare/download_extractor.sh; KIT-ML: checkpoints/kit/...)")


class ReleaseError(ValueError):
    """A release folder or checkpoint that cannot be used; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class MissingFile:
    path: str      # relative to the release folder
    source: str    # where to get it

    def __str__(self) -> str:
        return f"{self.path}: {self.source}"


def release_checkpoints(folder: Path) -> list[Path]:
    """The IRG checkpoint files at the top of `folder` (not vqvae.pth, not the HF Trainer's side files)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES
                  and p.name != RELEASE_VQ and not TRAINER_FILES.match(p.name))


def missing_release_files(folder: Path) -> list[MissingFile]:
    """Every file a release folder lacks, each with where it comes from."""
    folder = Path(folder)
    base = folder / RELEASE_BASE
    missing = [MissingFile(f"{RELEASE_BASE}/{name}", SOURCE_BASE)
               for name in ("config.json", "tokenizer_config.json") if not (base / name).is_file()]
    if not any((base / n).is_file() for n in ("tokenizer.json", "tokenizer.model")):
        missing.append(MissingFile(f"{RELEASE_BASE}/tokenizer.json (or tokenizer.model)", SOURCE_BASE))
    if not any((base / n).is_file() for n in ("model.safetensors", "model.safetensors.index.json",
                                              "pytorch_model.bin", "pytorch_model.bin.index.json")):
        missing.append(MissingFile(f"{RELEASE_BASE}/model.safetensors.index.json and its model-*.safetensors "
                                   "shards (or model.safetensors)", SOURCE_BASE))
    if not folder.is_dir() or not release_checkpoints(folder):
        missing.append(MissingFile("<checkpoint>.pth (or .pt, .bin, .safetensors)", SOURCE_CHECKPOINT))
    if not (folder / RELEASE_VQ).is_file():
        missing.append(MissingFile(RELEASE_VQ, SOURCE_VQ))
    for name in (MEAN_FILE, STD_FILE):
        if not (folder / name).is_file():
            missing.append(MissingFile(name, SOURCE_STATS.format(name=name)))
    return missing


def describe_missing(folder: Path, missing: list[MissingFile]) -> str:
    return (f"{folder} is not a complete IRG-MotionLLM release folder; missing:\n"
            + "\n".join(f"  - {m}" for m in missing)
            + "\n(`irg-motion fetch-release DIR` downloads what the hub has and prints the rest)")


# -- reading checkpoints ------------------------------------------------------------------------------------------
@dataclass
class ReleaseCheckpoint:
    path: Path
    weights: dict[str, torch.Tensor] = field(default_factory=dict)   # Gemma2ForCausalLM names
    rows: dict[str, torch.Tensor] = field(default_factory=dict)      # 'embeddings' / 'lm_head'
    lora: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # weight name -> (A, B)
    adapter: str | None = None
    ignored: list[str] = field(default_factory=list)                 # VQ-VAE keys, other adapters
    info: dict = field(default_factory=dict)                         # epoch / step of a stage-1/2 file

    @property
    def full(self) -> bool:
        """Holds the whole LLM (stage-1/2/3 or merged) rather than LoRA adapters on the base."""
        return any(k.startswith("model.layers.") for k in self.weights)


def _load_raw(path: Path) -> dict:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:   # an old (non-zip) torch.save file cannot be memory-mapped
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise ReleaseError(f"{path.name} cannot be read as a weights file ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc


def read_checkpoint(path: Path) -> ReleaseCheckpoint:
    """One checkpoint file sorted into Gemma weights, 514/full rows, LoRA pairs and ignored keys."""
    path = Path(path)
    raw = _load_raw(path)
    if not isinstance(raw, dict):
        raise ReleaseError(f"{path.name} holds a {type(raw).__name__}, not a dict of tensors")
    ckpt = ReleaseCheckpoint(path)
    if isinstance(raw.get("state_dict"), dict):
        ckpt.info = {k: v for k, v in raw.items() if k != "state_dict" and isinstance(v, (int, float, str))}
        raw = raw["state_dict"]
    elif isinstance(raw.get("net"), dict) and not any(torch.is_tensor(v) for v in raw.values()):
        raise ReleaseError(f"{path.name} is a VQ-VAE checkpoint ({{'net': ...}}), not an LLM checkpoint; "
                           f"name it {RELEASE_VQ}")
    pairs: dict[str, dict[str, dict[str, torch.Tensor]]] = {}   # adapter -> weight name -> {'A','B'}
    for key, value in raw.items():
        if not torch.is_tensor(value):
            continue
        for prefix in ("module.", "llm.", "module."):
            key = key.removeprefix(prefix)
        if key.startswith(("net.", "vqvae.")):
            ckpt.ignored.append(key)
        elif key in ("embeddings", "lm_head"):
            ckpt.rows[key] = value
        elif m := LORA_KEY.match(key):
            pairs.setdefault(m.group(3), {}).setdefault(m.group(1) + ".weight", {})[m.group(2)] = value
        else:
            ckpt.weights[key.replace("base_model.model.", "").replace(".base_layer", "")] = value
    if pairs:
        chosen = next((a for a in LORA_ADAPTERS if a in pairs), None)
        if chosen is None:
            raise ReleaseError(f"{path.name} holds LoRA adapters {', '.join(sorted(pairs))} but none named "
                               f"{' or '.join(LORA_ADAPTERS)} (the text-to-motion adapter)")
        for name, ab in pairs[chosen].items():
            if set(ab) != {"A", "B"}:
                raise ReleaseError(f"{path.name}: LoRA {chosen} of {name} lacks lora_{'B' if 'A' in ab else 'A'}")
            ckpt.lora[name] = (ab["A"], ab["B"])
        ckpt.adapter = chosen
        ckpt.ignored += [f"LoRA adapter {a}" for a in sorted(pairs) if a != chosen]
    if not (ckpt.weights or ckpt.rows or ckpt.lora):
        raise ReleaseError(f"{path.name} holds no LLM weights" + (f" (only {_few(ckpt.ignored, 3)})" if ckpt.ignored
                                                                   else " (it is empty)"))
    return ckpt


def lora_scale(folder: Path) -> float:
    """alpha / r of the LoRA-only checkpoint: 1.0 (r = alpha = 64 in every release script) unless
    adapter_config.json says otherwise."""
    path = Path(folder) / ADAPTER_CONFIG
    if not path.is_file():
        return 1.0
    config = json.loads(path.read_text())
    return float(config["lora_alpha"]) / float(config["r"])


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


@torch.no_grad()
def apply_checkpoint(lm: torch.nn.Module, ckpt: ReleaseCheckpoint, text_vocab: int, scale: float = 1.0) -> list[str]:
    """Write the checkpoint into `lm` (already resized to the motion vocabulary); returns notes for the user."""
    name = ckpt.path.name
    params = dict(lm.named_parameters())
    emb = lm.get_input_embeddings().weight
    notes = []
    if "lm_head.weight" in ckpt.weights and "model.embed_tokens.weight" in ckpt.weights and \
            not torch.equal(ckpt.weights["lm_head.weight"], ckpt.weights["model.embed_tokens.weight"]):
        raise ReleaseError(f"{name}: lm_head.weight differs from model.embed_tokens.weight, but Gemma-2 ties them; "
                           "this is not an IRG-MotionLLM checkpoint of gemma-2-2b-it")
    if "embeddings" in ckpt.rows and "lm_head" in ckpt.rows and not torch.equal(ckpt.rows["embeddings"],
                                                                              ckpt.rows["lm_head"]):
        raise ReleaseError(f"{name}: `embeddings` and `lm_head` differ, but the release ties them (section 2.1)")
    wrong = [f"{k} {tuple(v.shape)} in file, {tuple(params[k].shape)} in the model"
             for k, v in ckpt.weights.items() if k in params and v.shape != params[k].shape]
    if wrong:
        vocab = f" (the model has {emb.shape[0]} token rows: {RELEASE_VOCAB} expected)" \
            if any(k.startswith("model.embed_tokens") for k in wrong) else ""
        raise ReleaseError(f"{name}: wrong shapes: {_few(wrong, 3)}{vocab}")
    for key, value in ckpt.weights.items():
        if key in params:
            params[key].copy_(value.to(params[key].dtype))
    unused = sorted(k for k in ckpt.weights if k not in params and k != "lm_head.weight")
    if unused:
        notes.append(f"{name}: {len(unused)} keys are not Gemma-2 parameters and were skipped ({_few(unused)})")
    if ckpt.full:
        absent = sorted(k for k in params if k not in ckpt.weights)
        if absent:
            raise ReleaseError(f"{name} holds the LLM's layers but lacks {len(absent)} of its parameters "
                               f"({_few(absent)}); is it a checkpoint of another model or a partial save?")
    for target, (a, b) in ckpt.lora.items():
        if target not in params:
            raise ReleaseError(f"{name}: LoRA {ckpt.adapter} targets {target}, which the base model lacks")
        weight = params[target]
        if (b.shape[0], a.shape[1]) != tuple(weight.shape) or a.shape[0] != b.shape[1]:
            raise ReleaseError(f"{name}: LoRA {ckpt.adapter} of {target} has A {tuple(a.shape)} and B "
                               f"{tuple(b.shape)}, which do not fit the weight {tuple(weight.shape)}")
        weight.add_((b.float() @ a.float() * scale).to(weight.dtype))
    for key, module in (("embeddings", lm.get_input_embeddings()), ("lm_head", lm.get_output_embeddings())):
        if key not in ckpt.rows:
            continue
        rows = ckpt.rows[key]
        target = module.weight[text_vocab:] if len(rows) == NB_CODE + 2 else module.weight
        if target.shape != rows.shape:
            raise ReleaseError(f"{name}: `{key}` has shape {tuple(rows.shape)}; expected {NB_CODE + 2} motion rows "
                               f"or the whole {tuple(module.weight.shape)} matrix")
        target.copy_(rows.to(target.dtype))
    if ckpt.ignored:
        notes.append(f"{name}: ignored {_few(ckpt.ignored, 2)} (the VQ-VAE comes from {RELEASE_VQ})")
    return notes


def check_release_lm(lm: torch.nn.Module, tokenizer, text_vocab: int, where: str) -> list[str]:
    """The vocabulary layout and the tying the release relies on: text_vocab + 514 rows, tied lm_head (errors).
    A base vocabulary other than Gemma-2's 256000 is only a note here (stand-in bases in tests); a release
    checkpoint then fails its shape check, naming the 256514 rows it needs."""
    rows = lm.get_input_embeddings().weight.shape[0]
    if rows != text_vocab + NB_CODE + 2 or len(tokenizer) != rows:
        raise ReleaseError(f"{where}: the vocabulary has {len(tokenizer)} tokens and {rows} embedding rows; "
                           f"the release needs {RELEASE_VOCAB} (256000 text + <Motion>, </Motion>, 512 codes)")
    head = lm.get_output_embeddings().weight
    if head.data_ptr() != lm.get_input_embeddings().weight.data_ptr():
        raise ReleaseError(f"{where}: lm_head is not tied to model.embed_tokens (config tie_word_embeddings must "
                           "be true, as in gemma-2-2b-it)")
    if text_vocab != TEXT_VOCAB:
        return [f"{where}: the base tokenizer has {text_vocab} tokens, not Gemma-2's {TEXT_VOCAB}, so <Motion> is "
                f"id {text_vocab} instead of {TEXT_VOCAB}; release checkpoints will not fit this base"]
    return []


def default_attention(device: str) -> str:
    """Gemma-2 needs its attention soft-cap: `transformers` refuses SDPA for it, so CUDA uses flash-attention 2
    (>= 2.6 has the soft-cap) when installed and eager attention otherwise; the CPU uses eager."""
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "eager"


def release_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def load_release(folder: Path, device: str, attn: str | None = None):
    """gemma-2-2b-it + the motion tokens + the one checkpoint + vqvae.pth and mean/std, as a MotionModel."""
    from backend.models.loader import MotionModel   # loader imports this module lazily

    folder = Path(folder)
    checkpoints = release_checkpoints(folder)
    if len(checkpoints) != 1:
        raise ReleaseError(f"{folder} holds {len(checkpoints)} checkpoint files ({', '.join(p.name for p in checkpoints)}); "
                           "keep only the one to serve (the others may go in a subfolder)")
    ckpt = read_checkpoint(checkpoints[0])
    base = folder / RELEASE_BASE
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    lm = AutoModelForCausalLM.from_pretrained(str(base), dtype=release_dtype(device),
                                              attn_implementation=attn or default_attention(device))
    text_vocab = len(tokenizer)
    if lm.get_input_embeddings().weight.shape[0] != text_vocab:
        raise ReleaseError(f"{base}: the model has {lm.get_input_embeddings().weight.shape[0]} token rows but its "
                           f"tokenizer {text_vocab} tokens")
    ids = add_motion_tokens(tokenizer)
    lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    notes = check_release_lm(lm, tokenizer, text_vocab, str(base))
    notes += apply_checkpoint(lm, ckpt, text_vocab, lora_scale(folder) if ckpt.lora else 1.0)
    config = None
    if (folder / CONFIG_FILE).is_file():
        config = VQVAEConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
    try:
        motion_tokenizer = load_release_vqvae(folder / RELEASE_VQ, folder / MEAN_FILE, folder / STD_FILE,
                                              config=config, device=device)
    except ValueError as exc:
        raise ReleaseError(str(exc)) from exc
    if motion_tokenizer.config.nb_code != ids.nb_code:
        raise ReleaseError(f"{RELEASE_VQ} has {motion_tokenizer.config.nb_code} codes; the LLM has {ids.nb_code}")
    model = MotionModel(model_id=f"irg-motionllm:{folder.name}", device=device, lm=lm.to(device).eval(),
                        tokenizer=tokenizer, motion_ids=ids, motion_tokenizer=motion_tokenizer, vocabulary=None,
                        max_prompt_chars=1000)
    model.notes = notes
    return model


# -- stand-ins: a placeholder Gemma vocabulary and a random model of the 2B shape ----------------------------------
def placeholder_tokenizer(texts, size: int = TEXT_VOCAB):
    """A word-level tokenizer with exactly `size` entries and Gemma's special ids (pad 0, eos 1, bos 2): the words
    of `texts`, then `[unusedN]` placeholders. Gives the release's id layout without Gemma's tokenizer."""
    words = sorted({p for t in texts for p in word_pieces(MOTION_TOKEN_RE.sub(" ", t))} - set(SPECIAL_TOKENS))
    if len(words) + len(SPECIAL_TOKENS) > size:
        raise ValueError(f"{len(words)} words do not fit a vocabulary of {size}")
    words += [f"[unused{i}]" for i in range(size - len(SPECIAL_TOKENS) - len(words))]
    return word_tokenizer_from_words(words)


def gemma2_2b_config(layers: int | None = None, hidden: int | None = None, vocab_size: int = TEXT_VOCAB,
                     attn: str = "eager") -> Gemma2Config:
    """Gemma-2-2B's config (hidden 2304, 26 layers, 8/4 heads of 256, MLP 9216, window 4096, soft-caps 50/30).
    `layers` and `hidden` shrink it for smoke tests (heads scale with `hidden`)."""
    n = layers or 26
    hidden = hidden or 2304
    heads = max(1, 8 * hidden // 2304)
    head_dim = 256 if hidden == 2304 else max(8, hidden // heads)
    return Gemma2Config(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=n,
        num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), head_dim=head_dim,
        query_pre_attn_scalar=head_dim, max_position_embeddings=8192, sliding_window=4096,
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)],
        attn_logit_softcapping=50.0, final_logit_softcapping=30.0, pad_token_id=0, eos_token_id=1,
        bos_token_id=2, tie_word_embeddings=True, attn_implementation=attn,
    )


def random_release_model(device: str, layers: int | None = None, hidden: int | None = None, seed: int = 0,
                         attn: str | None = None, words: str = ""):
    """A randomly initialised Gemma-2 of the 2B shape with the release's 256514-token layout and a random
    release-shape VQ-VAE: the speed of the released model without its weights (bf16 on CUDA). `words` go into
    its placeholder vocabulary besides the prompt format's."""
    from backend import prompts
    from backend.models.loader import MotionModel

    torch.manual_seed(seed)
    tokenizer = placeholder_tokenizer([prompts.trace_context("a person jumps forward"),
                                       prompts.trace_response("a person jumps.", [prompts.TraceRound(
                                           [0], "a person waves with the right hand.", prompts.NO_REFINEMENT)]),
                                       "a man walks in a circle two times . make the motion match the prompt .",
                                       words])
    config = gemma2_2b_config(layers, hidden, attn=attn or default_attention(device))
    dtype = release_dtype(device)
    with torch.device(device if device.startswith("cuda") else "cpu"):
        lm = Gemma2ForCausalLM(config).to(dtype)
    ids = add_motion_tokens(tokenizer)
    lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if check_release_lm(lm, tokenizer, TEXT_VOCAB, "random-2b"):
        raise ReleaseError("random-2b: the placeholder vocabulary does not have Gemma-2's layout")
    vq = VQVAEConfig()
    motion_tokenizer = MotionTokenizer(MotionVQVAE(vq), Normalizer(np.zeros(vq.input_dim, np.float32),
                                                                   np.ones(vq.input_dim, np.float32)))
    shape = f"{config.num_hidden_layers} layers, hidden {config.hidden_size}"
    return MotionModel(model_id=f"random-2b ({shape})", device=device, lm=lm.to(device).eval(), tokenizer=tokenizer,
                       motion_ids=ids, motion_tokenizer=motion_tokenizer.to(device), vocabulary=None,
                       max_prompt_chars=1000)
