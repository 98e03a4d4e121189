"""Train the text-motion evaluator on a HumanML3D-layout folder.

Reads top to bottom: load the train/val pairs and the data set's Mean/Std, build the word vocabulary from
the training captions, then per epoch shuffle the clips and take one random caption and one random crop
per clip, minimise the symmetric InfoNCE loss, and measure val R-precision. A checkpoint (OUT/ckpt.pt) is
written after every epoch, so a run stopped by --max-minutes or Ctrl-C continues with --resume. At the
end OUT holds the evaluator folder (config.json, vocab.json, model.safetensors) that Evaluator.load reads.

Under `accelerate launch` / `torchrun` each process (a CPU process: the model is a small GRU whose code
builds its index tensors on the CPU) takes its own share of every epoch's clip order with DDP; `batch_size`
is per process, so the InfoNCE negatives are the process's own batch. The main process alone measures val
R-precision and writes the checkpoint and the evaluator folder.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from backend.config_file import check_keys, read_json_object
from backend.motion.normalize import Normalizer
from training.evaluator.data import Item, check_data_dir, load_items
from training.evaluator.evaluate import crop, evaluate_real
from training.distributed import any_process, make_accelerator, replica_checksums
from training.evaluator.model import Evaluator, EvaluatorConfig, TextMotionModel, Vocabulary, pad_motions, pad_texts


@dataclass
class TrainConfig:
    model: dict = field(default_factory=dict)  # EvaluatorConfig fields other than feature_dim and vocab_size
    batch_size: int = 64
    epochs: int = 60
    lr: float = 1e-3
    min_lr: float = 5e-5
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    val_repeats: int = 3

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        raw = read_json_object(path, "training/configs/evaluator_builtin.json")
        check_keys(raw, cls, str(path))
        config = cls(**raw)
        EvaluatorConfig.from_dict(config.model, f"{path} (model)")  # fail now on a bad model setting
        if "feature_dim" in config.model or "vocab_size" in config.model:
            raise ValueError(f"{path}: feature_dim and vocab_size come from the data set; remove them from model")
        if config.batch_size < 2 or config.epochs < 1 or config.lr <= 0:
            raise ValueError(f"{path}: batch_size must be >= 2, epochs >= 1 and lr > 0")
        return config


def learning_rate(step: int, total: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min((step - config.warmup_steps) / max(total - config.warmup_steps, 1), 1.0)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def make_batch(items: list[Item], model_config: EvaluatorConfig, vocab: Vocabulary, rng: np.random.Generator):
    texts = [item.captions[rng.integers(len(item.captions))].text for item in items]
    motions = [crop(item.features, rng, model_config.unit_length, model_config.max_frames) for item in items]
    same_text = torch.tensor([[a == b for b in texts] for a in texts])
    return pad_texts(vocab, texts, model_config.max_words), pad_motions(motions), same_text


class ContrastiveStep(nn.Module):
    """The training loss as one forward: DDP averages the gradients of what runs through its forward only."""

    def __init__(self, model: TextMotionModel):
        super().__init__()
        self.model = model

    def forward(self, ids, words, motions, frames, same_text) -> torch.Tensor:
        return self.model.contrastive_loss(self.model.encode_text(ids, words), self.model.encode_motion(motions, frames),
                                           same_text)


def train(data_dir: str | Path, config: TrainConfig, out_dir: str | Path, resume: bool = False,
          max_minutes: float | None = None) -> Path:
    started = time.monotonic()
    accelerator = make_accelerator(mixed_precision="no")   # fp32: a small GRU model; a GPU when there is one
    main, rank, world = accelerator.is_main_process, accelerator.process_index, accelerator.num_processes
    torch.set_num_threads(config.threads)
    data_dir, out_dir = check_data_dir(data_dir, "train"), Path(out_dir)
    ckpt_path = out_dir / "ckpt.pt"
    if resume and not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path}: nothing to resume; run without --resume to start")
    if not resume and ckpt_path.is_file():
        raise ValueError(f"{out_dir} already holds a run (ckpt.pt); pass --resume to continue it or choose a new --out")
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. data: clips long enough for two units of the movement encoder; val with the evaluation's length limits
    normalizer = Normalizer.load(data_dir)
    unit = EvaluatorConfig.from_dict(config.model, "model").unit_length
    train_items = load_items(data_dir, "train", min_frames=2 * unit, max_frames=10**9)
    val_items = load_items(data_dir, "val")
    if normalizer.dim != train_items[0].features.shape[1]:
        raise ValueError(f"{data_dir}: Mean.npy is {normalizer.dim}-d but new_joint_vecs are "
                         f"{train_items[0].features.shape[1]}-d; recompute Mean.npy/Std.npy")

    # 2. model, vocabulary and optimiser (or all three from the checkpoint); the same initial weights everywhere
    if resume:
        ckpt = torch.load(ckpt_path, weights_only=False, map_location="cpu")
        vocab, model_config = Vocabulary(ckpt["vocab"]), EvaluatorConfig(**ckpt["model_config"])
    else:
        vocab = Vocabulary.build([c.text for item in train_items for c in item.captions])
        model_config = EvaluatorConfig(**config.model, feature_dim=normalizer.dim, vocab_size=len(vocab))
    torch.manual_seed(config.seed)
    model = TextMotionModel(model_config)
    model.feature_mean.copy_(torch.from_numpy(normalizer.mean))
    model.feature_std.copy_(torch.from_numpy(normalizer.std))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_epoch, history = 0, []
    if resume:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, history = ckpt["epoch"], ckpt["history"]
    steps_per_epoch = len(train_items) // (config.batch_size * world)
    if steps_per_epoch == 0:
        raise ValueError(f"{data_dir}: {len(train_items)} training clips, fewer than one batch of {config.batch_size}"
                         + (f" for each of {world} processes" if world > 1 else ""))
    total_steps = steps_per_epoch * config.epochs
    step_model, optimizer = accelerator.prepare(ContrastiveStep(model), optimizer)

    # 3. epochs: every epoch draws from its own seeded generator, so a resumed run sees the same batches
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[status]}"), TimeRemainingColumn()]
    with Progress(*columns, disable=not main) as progress:
        task = progress.add_task("training evaluator", total=config.epochs, completed=start_epoch, status="")
        for epoch in range(start_epoch, config.epochs):
            rng = np.random.default_rng([config.seed, epoch])
            torch.manual_seed((config.seed * 100003 + epoch) * world + rank)
            model.train()
            order = rng.permutation(len(train_items))[rank::world]   # each process its own share of the epoch
            if rank:
                rng = np.random.default_rng([config.seed, epoch, rank])   # and its own captions and crops
            losses = []
            for b in range(steps_per_epoch):
                batch = [train_items[i] for i in order[b * config.batch_size:(b + 1) * config.batch_size]]
                (ids, words), (motions, frames), same_text = make_batch(batch, model_config, vocab, rng)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(epoch * steps_per_epoch + b, total_steps, config)
                loss = step_model(*(t.to(accelerator.device) for t in (ids, words, motions, frames, same_text)))
                optimizer.zero_grad(set_to_none=True)
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(step_model.parameters(), 1.0)
                optimizer.step()
                losses.append(loss.item())

            replica_checksums(accelerator, step_model)   # raises if the processes drifted apart
            if main:
                model.eval()
                val, _ = evaluate_real(Evaluator(model, vocab), val_items, repeats=config.val_repeats, seed=config.seed)
                history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                                **{f"val_{k}": v[0] for k, v in val.items()}})
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                            "history": history, "vocab": vocab.words, "model_config": asdict(model_config)}, ckpt_path)
                progress.update(task, advance=1, status=f"loss {history[-1]['loss']:.3f}  val top-1 {val['top1'][0]:.3f}")
            out_of_time = max_minutes is not None and time.monotonic() - started > 60 * max_minutes
            if any_process(accelerator, out_of_time) and epoch + 1 < config.epochs:
                if main:
                    progress.console.print(f"stopped after {epoch + 1} epochs; continue with --resume")
                return out_dir

    # 4. the evaluator folder
    if main:
        Evaluator(model, vocab).save(out_dir, extra={"trained_on": data_dir.name, "epochs": config.epochs,
                                                     "val": history[-1] if history else {}})
        (out_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    return out_dir
