"""Train the motion LLM on the procedural corpus: stage-1 tasks mixed with stage-2 interleaved traces.

Read top to bottom: config -> data (VQ codes of every clip, sample builder, word-level tokenizer) -> model
(a small Gemma-2 with the motion tokens) -> a plain AdamW loop with warmup + cosine decay, run in
time-boxed chunks that end with a resumable checkpoint -> export (`save_pretrained`) once `max_steps` is
reached. Loss falls on the response and `<eos>` only; intermediate (incorrect) motions of a trace are
in the input but carry label -100, as the release's `--ignore-incorrect` does.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import Gemma2ForCausalLM, PreTrainedTokenizerFast

from backend.models.loader import LLM_DIR, LIMITS_FILE
from backend.models.motion_llm import (MotionLMConfig, build_word_tokenizer, count_parameters, gemma2_config,
                                       new_motion_lm)
from backend.models.motion_tokenizer import MotionTokenizer
from training.llm.data import Sample, SampleBuilder, encode_corpus, load_clips, read_split

IGNORE = -100


@dataclass
class TrainConfig:
    corpus: str = "data/corpus"
    motion_tokenizer: str = "backend/models/builtin"   # folder of the trained VQ-VAE
    out_dir: str = "runs/llm_builtin"                 # checkpoints, tokenizer and code cache
    export_dir: str = "backend/models/builtin"        # the finished model goes to export_dir/llm
    model: MotionLMConfig = field(default_factory=MotionLMConfig)
    batch_size: int = 16
    max_len: int = 512
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 100
    max_steps: int = 3000
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    stage2_fraction: float = 0.5      # share of stage-2 traces in a batch; the rest are the eight stage-1 tasks
    max_intermediate: int = 2         # wrong motions before the goal in a trace (0..this)
    chunk_minutes: float = 9.0        # stop, checkpoint and exit after this long (run again to resume)
    log_every: int = 50
    seed: int = 0
    threads: int = 2
    max_seconds: float = 9.8          # longest motion the loop may ask for (written to loop_limits.json)

    @classmethod
    def from_json(cls, path: str | Path, **overrides) -> "TrainConfig":
        data = json.loads(Path(path).read_text()) | {k: v for k, v in overrides.items() if v is not None}
        data["model"] = MotionLMConfig(**data.get("model", {}))
        return cls(**data)


def lr_at(step: int, c: TrainConfig) -> float:
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    progress = min(1.0, (step - c.warmup_steps) / max(1, c.max_steps - c.warmup_steps))
    return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * progress))


def tokenize(sample: Sample, tokenizer, max_len: int) -> tuple[list[int], list[int]]:
    """(input ids, labels): `<bos>` + context unsupervised, response pieces supervised unless ignored, `<eos>`."""
    ids = [tokenizer.bos_token_id] + tokenizer(sample.context, add_special_tokens=False)["input_ids"]
    labels = [IGNORE] * len(ids)
    for text, ignored in sample.pieces:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += [IGNORE] * len(piece) if ignored else piece
    ids.append(tokenizer.eos_token_id)
    labels.append(tokenizer.eos_token_id)
    return ids[:max_len], labels[:max_len]


def collate(rows: list[tuple[list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def bucketed_batches(builder: SampleBuilder, tokenizer, c: TrainConfig, buckets: int = 4) -> list[dict]:
    """`buckets` batches from one draw of samples sorted by length, so little of a batch is padding."""
    rows = sorted((tokenize(builder.draw(c.stage2_fraction), tokenizer, c.max_len)
                   for _ in range(c.batch_size * buckets)), key=lambda row: len(row[0]))
    batches = [collate(rows[i:i + c.batch_size], tokenizer.pad_token_id) for i in range(0, len(rows), c.batch_size)]
    builder.rng.shuffle(batches)
    return batches


def prepare(c: TrainConfig, describe_difference, log=print):
    """Codes of the train clips (cached), the sample builder and the tokenizer (built once, then reused)."""
    out = Path(c.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = Path(c.corpus)
    cache = out / "codes.json"
    if cache.is_file():
        codes = json.loads(cache.read_text())
    else:
        t0 = time.time()
        vq = MotionTokenizer.load(c.motion_tokenizer)
        with torch.inference_mode():
            codes = encode_corpus(corpus, vq, read_split(corpus, "train"))
        cache.write_text(json.dumps(codes))
        log(f"encoded {len(codes)} clips with the VQ-VAE in {time.time() - t0:.0f} s")
    clips = load_clips(corpus, "train", codes)
    builder = SampleBuilder(clips, describe_difference, random.Random(c.seed), c.max_intermediate)
    return clips, builder


def train(c: TrainConfig, describe_difference, log=print) -> bool:
    """Run one chunk; returns True when max_steps is reached and the model has been exported."""
    torch.set_num_threads(c.threads)
    torch.manual_seed(c.seed)
    out = Path(c.out_dir)
    clips, builder = prepare(c, describe_difference, log)
    tok_dir, ckpt_path = out / "tokenizer", out / "ckpt.pt"
    if tok_dir.is_dir() and ckpt_path.is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tok_dir))   # already holds the motion tokens
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model = Gemma2ForCausalLM(gemma2_config(MotionLMConfig(**ckpt["model_config"]), len(tokenizer)))
        model.load_state_dict(ckpt["model"])
        step = ckpt["step"]
        builder.rng.setstate(ckpt["rng"])
    else:
        tokenizer = build_word_tokenizer(builder.vocabulary_texts())
        model, _ = new_motion_lm(c.model, tokenizer)
        tokenizer.save_pretrained(str(tok_dir))
        ckpt, step = None, 0
    log(f"{len(clips)} train clips, vocabulary {len(tokenizer)} tokens, {count_parameters(model) / 1e6:.2f} M "
        f"parameters, resuming at step {step}")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}], lr=c.lr, betas=(0.9, 0.95))
    if ckpt is not None:
        optim.load_state_dict(ckpt["optim"])
    model.train()
    start, seen, losses = time.time(), 0, []
    batches: list[dict[str, torch.Tensor]] = []
    while step < c.max_steps and time.time() - start < c.chunk_minutes * 60:
        if not batches:
            batches = bucketed_batches(builder, tokenizer, c)
        batch = batches.pop()
        for group in optim.param_groups:
            group["lr"] = lr_at(step, c)
        loss = model(**batch).loss
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        optim.step()
        step, seen = step + 1, seen + int(batch["attention_mask"].sum())
        losses.append(loss.item())
        if step % c.log_every == 0:
            log(f"step {step}/{c.max_steps} loss {sum(losses) / len(losses):.3f} lr {lr_at(step, c):.2e} "
                f"{seen / (time.time() - start):.0f} tok/s")
            losses = []
    torch.save({"model": model.state_dict(), "optim": optim.state_dict(), "step": step,
                "model_config": asdict(c.model) if ckpt is None else ckpt["model_config"],
                "rng": builder.rng.getstate(), "config": asdict(c) | {"model": asdict(c.model)}}, ckpt_path)
    log(f"checkpoint at step {step} -> {ckpt_path}")
    if step < c.max_steps:
        return False
    export(model, tokenizer, c)
    log(f"exported to {Path(c.export_dir) / LLM_DIR}")
    return True


def export(model, tokenizer, c: TrainConfig) -> None:
    folder = Path(c.export_dir) / LLM_DIR
    model.eval()
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / LIMITS_FILE).write_text(json.dumps({"max_seconds": c.max_seconds}, indent=2) + "\n")
