"""Train the motion LLM: the eight stage-1 tasks, stage-2 interleaved traces, or both mixed.

Read top to bottom: config -> data (VQ codes of every train clip; samples from the corpus' SampleBuilder or
from an annotation folder; `stage` "1", "2" or "mixed") -> model (a new small Gemma-2 over a word-level
tokenizer, or `init_from` an export, a checkpoint of this trainer or a Hugging Face model folder such as
gemma-2-2b-it, which gains the motion tokens the release's way; optionally LoRA, with the motion-token rows
trained as well) -> an AdamW loop with warmup + cosine decay under `accelerate` (one process, DDP or
DeepSpeed ZeRO; `mixed_precision` "bf16" is autocast over fp32 master weights), run in time-boxed chunks
that end with a resumable checkpoint -> export (`save_pretrained`, LoRA merged) once `max_steps` is reached.
Loss falls on the response and `<eos>` only; intermediate (incorrect) motions of a trace are in the input but
carry label -100, as the release's `--ignore-incorrect` does.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from backend.config_file import check_keys, read_json_object
from backend.models.loader import LIMITS_FILE, LLM_DIR
from backend.models.motion_llm import (MotionLMConfig, add_motion_tokens, build_word_tokenizer, count_parameters,
                                       gemma2_config, motion_token_ids, new_motion_lm)
from backend.models.motion_tokenizer import CONFIG_FILE, MEAN_FILE, STD_FILE, WEIGHTS_FILE, MotionTokenizer
from backend.models.release import default_attention
from training.distributed import (any_process, configure_deepspeed, gather_random_states, is_deepspeed,
                                  make_accelerator, process_seed, replica_checksums, reseed_process,
                                  restore_random_state, zero_stage)
from training.llm.data import Sample, SampleBuilder, encode_corpus, load_clips, read_split

IGNORE = -100
STAGES = ("1", "2", "mixed")
STAGE2_SHARE = {"1": 0.0, "2": 1.0}   # share of stage-2 traces per stage; "mixed" takes stage2_fraction
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # the release's
CHECKPOINT, TOKENIZER_DIR, LOG_FILE = "ckpt.pt", "tokenizer", "train_log.jsonl"
DEEPSPEED_DIR = "deepspeed_state"     # under DeepSpeed the model and optimizer shards live here, not in ckpt.pt


@dataclass
class LoraSettings:
    """peft LoRA on the projections; the defaults are the release's 'shared' adapter (reference section 1.3)."""

    r: int = 64
    alpha: int = 64
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))


@dataclass
class TrainConfig:
    corpus: str = "data/corpus"
    motion_tokenizer: str = "backend/models/builtin"   # folder of the trained VQ-VAE
    out_dir: str = "runs/llm_builtin"                 # checkpoints, tokenizer, code cache and train_log.jsonl
    export_dir: str = "backend/models/builtin"        # the finished model goes to export_dir/llm
    model: MotionLMConfig = field(default_factory=MotionLMConfig)   # shape of a new model (not with init_from)
    batch_size: int = 16              # per process and micro-step
    max_len: int = 512
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 100
    max_steps: int = 3000             # optimizer steps
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    stage: str = "mixed"              # "1": the eight stage-1 tasks; "2": stage-2 traces; "mixed": both
    stage2_fraction: float = 0.5      # stage "mixed": share of stage-2 traces; the rest are the stage-1 tasks
    max_intermediate: int = 2         # wrong motions before the goal in a trace (0..this)
    init_from: str | None = None      # export folder, this trainer's ckpt.pt, or a HF model folder (gemma-2-2b-it)
    lora: LoraSettings | None = None  # None: full fine-tuning
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = None   # "no" or "bf16"; None: the accelerate launch config's
    annotations: str | None = None    # folder of annotations (AnnotationSampler) instead of the corpus' labels
    self_assessment: str | None = None   # JSONL of the model's own judged first rounds (irg-motion self-assess)
    self_assessment_fraction: float = 0.5   # share of the stage-2 draws that are self-assessment traces
    chunk_minutes: float = 9.0        # stop, checkpoint and exit after this long (run again to resume)
    log_every: int = 50
    seed: int = 0
    threads: int = 2
    max_seconds: float = 9.8          # longest motion the loop may ask for (written to loop_limits.json)
    comment: str = ""                 # for the reader (e.g. how max_steps was derived); not used

    @classmethod
    def from_json(cls, path: str | Path, **overrides) -> "TrainConfig":
        path = Path(path)
        raw = read_json_object(path, "training/configs/llm_builtin.json")
        data = raw | {k: v for k, v in overrides.items() if v is not None}
        check_keys(data, cls, str(path))
        check_keys(data.get("model", {}), MotionLMConfig, f"{path} (model)")
        data["model"] = MotionLMConfig(**data.get("model", {}))
        if data.get("lora") is not None:
            check_keys(data["lora"], LoraSettings, f"{path} (lora)")
            data["lora"] = LoraSettings(**data["lora"])
        config = cls(**data)
        if config.stage not in STAGES:
            raise ValueError(f"{path}: stage must be one of {', '.join(map(repr, STAGES))}, got {config.stage!r}")
        if config.stage != "mixed" and "stage2_fraction" in raw:
            raise ValueError(f"{path}: stage2_fraction applies to stage 'mixed' only (stage {config.stage!r} "
                             "draws only its own samples)")
        if config.init_from and "model" in raw:
            raise ValueError(f"{path}: model sets the shape of a new model; with init_from the shape comes from "
                             f"{config.init_from}, so remove model")
        if config.gradient_accumulation_steps < 1:
            raise ValueError(f"{path}: gradient_accumulation_steps must be at least 1")
        return config


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


def bucketed_batches(sampler, tokenizer, c: TrainConfig, stage2_share: float,
                     buckets: int = 4) -> list[tuple[dict, list[str]]]:
    """`buckets` (batch, tasks) from one draw of samples sorted by length, so little of a batch is padding."""
    drawn = [sampler.draw(stage2_share) for _ in range(c.batch_size * buckets)]
    rows = sorted(((tokenize(s, tokenizer, c.max_len), s.task) for s in drawn), key=lambda row: len(row[0][0]))
    batches = [(collate([r for r, _ in rows[i:i + c.batch_size]], tokenizer.pad_token_id),
                [task for _, task in rows[i:i + c.batch_size]]) for i in range(0, len(rows), c.batch_size)]
    sampler.rng.shuffle(batches)
    return batches


def train_codes(c: TrainConfig, device: torch.device, log) -> dict[str, list[int]]:
    """VQ codes of the train clips, encoded once and cached in out_dir/codes.json."""
    cache = Path(c.out_dir) / "codes.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    t0 = time.time()
    corpus = Path(c.corpus)
    vq = MotionTokenizer.load(c.motion_tokenizer, device=device)
    with torch.inference_mode():
        codes = encode_corpus(corpus, vq, read_split(corpus, "train"))
    cache.write_text(json.dumps(codes))
    log(f"encoded {len(codes)} clips with the VQ-VAE in {time.time() - t0:.0f} s")
    return codes


def make_sampler(c: TrainConfig, codes: dict[str, list[int]], describe_difference, rng: random.Random):
    """Where samples come from: an annotation folder, or the corpus' labels (SampleBuilder)."""
    if c.annotations:
        from training.llm.annotations import AnnotationSampler   # only annotation runs need it

        sampler = AnnotationSampler(Path(c.annotations), codes, rng)
        sampler.require(STAGE2_SHARE.get(c.stage, c.stage2_fraction))
    else:
        sampler = SampleBuilder(load_clips(Path(c.corpus), "train", codes), describe_difference, rng,
                                c.max_intermediate)
    if c.self_assessment:
        from training.llm import self_assessment

        if not Path(c.self_assessment).is_file():
            raise FileNotFoundError(f"self_assessment: {c.self_assessment} does not exist; write it with "
                                    "`irg-motion self-assess --model DIR --data DIR --out FILE`")
        sampler = self_assessment.SelfAssessmentSampler(sampler, self_assessment.load(c.self_assessment), codes,
                                                        c.self_assessment_fraction)
    return sampler


# -- the model -----------------------------------------------------------------------------------------------------
def from_checkpoint_config(ckpt: dict, tokenizer, attn: str):
    """An LM of the checkpoint's architecture (weights are loaded by the caller)."""
    if "hf_config" in ckpt:
        config = AutoConfig.for_model(**ckpt["hf_config"])
    else:   # checkpoints written before init_from hold the small model's shape only
        config = gemma2_config(MotionLMConfig(**ckpt["model_config"]), len(tokenizer))
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation=attn)


def load_init(path: Path, attn: str):
    """(LM, tokenizer) to start from: a model folder (with llm/), this trainer's ckpt.pt (tokenizer/ beside it),
    or a Hugging Face model folder. A base model without the motion tokens gains them in the release's order."""
    if path.is_file():
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        if ckpt.get("model") is None or (ckpt.get("config") or {}).get("lora"):
            raise ValueError(f"init_from {path}: a checkpoint of a LoRA or DeepSpeed run; start from its export "
                             "folder instead")
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent / TOKENIZER_DIR))
        model = from_checkpoint_config(ckpt, tokenizer, attn)
        model.load_state_dict(ckpt["model"])
        return model, tokenizer
    folder = path / LLM_DIR if (path / LLM_DIR / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"init_from {path}: not a model folder (llm/config.json), a Hugging Face model "
                                f"folder (config.json) or a {CHECKPOINT} of this trainer")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, attn_implementation=attn)
    try:
        motion_token_ids(tokenizer)
    except ValueError:
        rows = model.get_input_embeddings().num_embeddings
        if rows != len(tokenizer):
            raise ValueError(f"init_from {folder}: the model has {rows} token rows but its tokenizer {len(tokenizer)} "
                             "tokens, so the motion tokens would not get the release's ids") from None
        add_motion_tokens(tokenizer)
        model.resize_token_embeddings(len(tokenizer))   # new rows around the mean of the others (transformers' default)
    return model, tokenizer


def with_lora(model, tokenizer, s: LoraSettings):
    """LoRA on the projections, plus the motion-token rows (<Motion>, </Motion>, the codes) trained as their own
    delta (peft's trainable tokens; the tied lm_head follows): the new tokens learn without the text rows."""
    from peft import LoraConfig, get_peft_model   # only LoRA runs need peft

    ids = motion_token_ids(tokenizer)
    rows = [ids.start, ids.end, *range(ids.first_code, ids.first_code + ids.nb_code)]
    return get_peft_model(model, LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout,
                                            target_modules=list(s.target_modules), bias="none", task_type="CAUSAL_LM",
                                            trainable_token_indices={"embed_tokens": rows}))


def build_lm(c: TrainConfig, ckpt: dict | None, sampler, attn: str):
    """(LM, tokenizer with the motion tokens): this run's checkpoint, else `init_from`, else a new small Gemma-2
    over a word-level tokenizer of every text the samples can hold."""
    if ckpt is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(Path(c.out_dir) / TOKENIZER_DIR))
        model = from_checkpoint_config(ckpt, tokenizer, attn)
    elif c.init_from:
        model, tokenizer = load_init(Path(c.init_from), attn)
    else:
        tokenizer = build_word_tokenizer(sampler.vocabulary_texts())
        model, _ = new_motion_lm(c.model, tokenizer)
    if c.lora is not None:
        model = with_lora(model, tokenizer, c.lora)
    if ckpt is not None and ckpt["model"] is not None:   # DeepSpeed runs restore the weights from DEEPSPEED_DIR
        model.load_state_dict(ckpt["model"])
    return model, tokenizer


# -- the loop ------------------------------------------------------------------------------------------------------
def silent(*_) -> None:
    pass


def train(c: TrainConfig, describe_difference, log=print) -> bool:
    """Run one chunk; returns True when max_steps is reached and the model has been exported."""
    accelerator = make_accelerator(mixed_precision=c.mixed_precision,
                                   gradient_accumulation_steps=c.gradient_accumulation_steps)
    main, processes = accelerator.is_main_process, accelerator.num_processes
    log = log if main else silent   # only the main process reports
    torch.set_num_threads(c.threads)
    torch.manual_seed(c.seed)
    out = Path(c.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with accelerator.main_process_first():   # the main process encodes the corpus, the others read its cache
        codes = train_codes(c, accelerator.device, log)
    sampler = make_sampler(c, codes, describe_difference, random.Random(c.seed))
    ckpt_path = out / CHECKPOINT
    resume = ckpt_path.is_file() and (out / TOKENIZER_DIR).is_dir()
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True) if resume else None
    if c.lora is not None and zero_stage(accelerator) == 3:
        raise ValueError("LoRA runs train a few parameters: use DDP or DeepSpeed ZeRO-2, not ZeRO-3")
    # flash-attention (CUDA, when installed) needs bf16 activations; fp32 runs take eager attention
    attn = default_attention(str(accelerator.device)) if accelerator.mixed_precision == "bf16" else "eager"
    model, tokenizer = build_lm(c, ckpt, sampler, attn)
    if main and ckpt is None:
        tokenizer.save_pretrained(str(out / TOKENIZER_DIR))
    # every process built the same model and vocabulary from the shared seed; now each draws its own samples
    reseed_process(c.seed, accelerator)
    if accelerator.process_index:
        sampler.rng.seed(process_seed(c.seed, accelerator))
    step = ckpt["step"] if ckpt else 0
    log(f"{len(codes)} train clips, vocabulary {len(tokenizer)} tokens, {count_parameters(model) / 1e6:.2f} M "
        f"parameters ({sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.2f} M trained), "
        f"stage {c.stage}, {processes} process(es), resuming at step {step}")

    trained = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW([{"params": [p for p in trained if p.ndim >= 2], "weight_decay": c.weight_decay},
                               {"params": [p for p in trained if p.ndim < 2], "weight_decay": 0.0}],
                              lr=c.lr, betas=(0.9, 0.95))
    configure_deepspeed(accelerator, c.batch_size, c.grad_clip)
    model, optim = accelerator.prepare(model, optim)
    if ckpt is not None:
        if ckpt["optim"] is None:
            accelerator.load_state(str(out / DEEPSPEED_DIR))
        else:
            optim.load_state_dict(ckpt["optim"])
        rng = ckpt["rng"]   # before multi-process runs: rank 0's sampler state alone
        if not restore_random_state(accelerator, sampler.rng, rng if isinstance(rng, list) else [{"data": rng}]):
            log("the checkpoint comes from another number of processes: each process starts a fresh data stream")

    stage2_share = STAGE2_SHARE.get(c.stage, c.stage2_fraction)
    model.train()
    start, seen, losses, tasks = time.time(), 0, [], Counter()
    batches: list[tuple[dict, list[str]]] = []
    with open(out / LOG_FILE, "a") if main else open(os.devnull, "w") as log_file:
        while step < c.max_steps and not any_process(accelerator, time.time() - start >= c.chunk_minutes * 60):
            for group in optim.param_groups:
                group["lr"] = lr_at(step, c)
            for _ in range(c.gradient_accumulation_steps):
                if not batches:
                    batches = bucketed_batches(sampler, tokenizer, c, stage2_share)
                batch, batch_tasks = batches.pop()
                with accelerator.accumulate(model):
                    loss = model(**{k: v.to(accelerator.device) for k, v in batch.items()}).loss
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), c.grad_clip)
                    optim.step()
                    optim.zero_grad(set_to_none=True)
                seen += int(batch["attention_mask"].sum())
                losses.append(loss.item())
                tasks.update(batch_tasks)
            step += 1
            if step % c.log_every == 0:
                rate = seen / (time.time() - start)
                mean = sum(losses) / len(losses)
                log(f"step {step}/{c.max_steps} loss {mean:.3f} lr {lr_at(step, c):.2e} {rate:.0f} tok/s"
                    + (f" per process x {processes}" if processes > 1 else ""))
                log_file.write(json.dumps({"step": step, "loss": mean, "lr": lr_at(step, c), "tokens_per_s": rate,
                                           "tasks": dict(sorted(tasks.items()))}) + "\n")
                losses, tasks = [], Counter()
        save_checkpoint(accelerator, model, optim, step, sampler, c, log_file)
    log(f"checkpoint at step {step} -> {ckpt_path}")
    if step < c.max_steps:
        return False
    export(accelerator, model, tokenizer, c)
    log(f"exported to {Path(c.export_dir) / LLM_DIR}")
    return True


def save_checkpoint(accelerator, model, optim, step: int, sampler, c: TrainConfig, log_file) -> None:
    """out_dir/ckpt.pt: weights, optimizer, step, the model's config and every process's random state (a
    collective: all processes call it; the main process writes). DeepSpeed's shards go to DEEPSPEED_DIR."""
    path = Path(c.out_dir) / CHECKPOINT
    states = gather_random_states(accelerator, sampler.rng)
    checksums = replica_checksums(accelerator, model)
    deepspeed = is_deepspeed(accelerator)
    if deepspeed:
        accelerator.save_state(str(path.parent / DEEPSPEED_DIR))
    if accelerator.is_main_process:
        lm = accelerator.unwrap_model(model)
        torch.save({"model": None if deepspeed else lm.state_dict(), "optim": None if deepspeed else optim.state_dict(),
                    "step": step, "hf_config": lm.config.to_dict(), "rng": states, "config": asdict(c)},
                   path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)   # never leave a half-written checkpoint
        if checksums:
            log_file.write(json.dumps({"step": step, "replica_checksums": checksums}) + "\n")
    accelerator.wait_for_everyone()


def export(accelerator, model, tokenizer, c: TrainConfig) -> None:
    """A model folder the loader reads: export_dir/llm as `save_pretrained` writes it (LoRA merged first, so the
    loader sees a plain model) and the VQ-VAE files beside it, copied from motion_tokenizer when that is elsewhere."""
    state = accelerator.get_state_dict(model) if zero_stage(accelerator) == 3 else None   # gathered from the shards
    if accelerator.is_main_process:
        folder = Path(c.export_dir) / LLM_DIR
        folder.mkdir(parents=True, exist_ok=True)
        vq = Path(c.motion_tokenizer)
        if vq.resolve() != Path(c.export_dir).resolve():
            for name in (WEIGHTS_FILE, CONFIG_FILE, MEAN_FILE, STD_FILE):
                shutil.copy2(vq / name, Path(c.export_dir) / name)
        lm = accelerator.unwrap_model(model)
        if c.lora is not None:
            lm = lm.merge_and_unload()
        # one model.safetensors (the file the loader reads), also for the 2B model in fp32
        lm.eval().save_pretrained(str(folder), state_dict=state, max_shard_size="50GB")
        tokenizer.save_pretrained(str(folder))
        (folder / LIMITS_FILE).write_text(json.dumps({"max_seconds": c.max_seconds}, indent=2) + "\n")
    accelerator.wait_for_everyone()
