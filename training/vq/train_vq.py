"""Train the motion VQ-VAE (T2M-GPT recipe) on any folder in the HumanML3D layout.

Reads `new_joint_vecs/<name>.npy` for the names in `train.txt` / `test.txt` and normalises with the folder's
`Mean.npy` / `Std.npy`. Each step takes random 64-frame windows of random training clips and minimises
    L1(recon, x) + vel * L1(d/dt recon, d/dt x) + commit * ||z - sg(q(z))||^2
      [+ root * L1 on the root channels] [+ root_mse * MSE on the root velocities]
      [+ heading * L1 on the integrated yaw] [+ joints * L1 on joint positions in metres]
on normalised features, with an EMA-reset codebook and AdamW (linear warm-up, cosine decay). Evaluation
decodes whole held-out clips and reports the mean joint position error in metres after `recover_from_ric`
and the codebook usage. `ckpt.pt` in the output folder makes a run resumable; at the end the tokenizer
(`vqvae.safetensors`, `vqvae_config.json`, `mean.npy`, `std.npy`) and `metrics.json` are written there.

Under `accelerate launch` / `torchrun` every process trains on its own crops (rank-offset seed) with DDP;
`batch_size` is per process. DDP broadcasts buffers from rank 0 at each forward, so the EMA codebook follows
rank 0's latents (the codebook sees one process's batch per step) while the gradients average over all.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from backend.config_file import check_keys, read_json_object
from backend.models.motion_tokenizer import MotionTokenizer
from backend.models.vqvae import MotionVQVAE, VQVAEConfig
from backend.motion.features import recover_from_ric
from backend.motion.normalize import Normalizer
from backend.motion.spec import spec_for_dim
from backend.motion.torch_features import recover_from_ric as recover_from_ric_torch
from training.distributed import (any_process, gather_random_states, make_accelerator, process_seed, replica_checksums,
                                  reseed_process, restore_random_state)

CHECKPOINT = "ckpt.pt"


@dataclass
class TrainConfig:
    model: VQVAEConfig = field(default_factory=VQVAEConfig)
    window: int = 64            # frames per training crop
    batch_size: int = 64
    max_steps: int = 4000
    lr: float = 2e-4
    min_lr: float = 2e-5        # end of the cosine decay
    warmup_steps: int = 200
    weight_decay: float = 0.0
    commit: float = 0.02        # beta: commitment loss weight
    vel: float = 0.1            # alpha: velocity L1 weight
    joints: float = 0.0         # L1 on joint positions in metres (recover_from_ric of the de-normalised crops)
    root: float = 0.0           # extra L1 on the 4 root channels: their errors integrate into trajectory drift
    heading: float = 0.0        # L1 on the yaw rate integrated over each crop (radians): heading drift
    root_mse: float = 0.0       # squared error on the normalised root velocities (yaw rate, sideways, forward):
                                # under L1 alone these rarely non-zero channels collapse to a constant 0
    root_oversample: float = 0.0  # share of each batch from crops that turn or move sideways (rare, drift-prone)
    init_from: str | None = None  # ckpt.pt of an earlier run to start from (weights and codebook), e.g. phase 1
    seed: int = 1234
    eval_every: int = 500
    eval_clips: int = 64        # held-out clips per evaluation (0: all)
    save_every: int = 250
    threads: int = 2

    @classmethod
    def from_dict(cls, d: dict, source: str = "VQ training config") -> "TrainConfig":
        check_keys(d, cls, source)
        d = dict(d)
        d["model"] = VQVAEConfig.from_dict(d.get("model", {}), f"{source} (model)")
        config = cls(**d)
        if config.window % config.model.downsample:
            raise ValueError(f"{source}: window must be a multiple of {config.model.downsample}, got {config.window}")
        return config

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(read_json_object(path, "training/configs/vq_builtin.json"), str(path))


def load_split(data_dir: Path, split: str, min_frames: int) -> list[np.ndarray]:
    """Feature arrays (T-1, D) of a split; clips shorter than min_frames are left out."""
    names = [n.strip() for n in (data_dir / f"{split}.txt").read_text().splitlines() if n.strip()]
    clips = []
    for name in names:
        path = data_dir / "new_joint_vecs" / f"{name}.npy"
        if path.is_file():
            clip = np.load(path).astype(np.float32)
            if len(clip) >= min_frames and np.isfinite(clip).all():
                clips.append(clip)
    if not clips:
        raise ValueError(f"{data_dir}: no {split} clips with at least {min_frames} frames in new_joint_vecs/")
    return clips


def check_data_dir(data_dir: Path) -> None:
    needed = ["new_joint_vecs", "Mean.npy", "Std.npy", "train.txt", "test.txt"]
    missing = [n for n in needed if not (data_dir / n).exists()]
    if missing:
        raise FileNotFoundError(f"{data_dir} is not a HumanML3D-layout folder: missing {', '.join(missing)}")


def root_crops(clips: list[np.ndarray], window: int, threshold: float = 0.5) -> list[tuple[int, int]]:
    """(clip, start) of every crop whose mean normalised yaw rate or sideways velocity exceeds `threshold`
    standard deviations: turning and side-stepping are rare, and a codebook that never sees them drops them
    (a slow sideways shuffle is about 0.8 std, hence 0.5)."""
    box = np.ones(window) / window
    found = []
    for i, clip in enumerate(clips):
        level = np.maximum(*(np.abs(np.convolve(clip[:, k], box, mode="valid")) for k in (0, 1)))
        found += [(i, int(start)) for start in np.flatnonzero(level > threshold)]
    return found


def sample_batch(clips: list[np.ndarray], config: TrainConfig, rng: np.random.Generator,
                 special: list[tuple[int, int]] = ()) -> torch.Tensor:
    """Random crops; the first `root_oversample` share of the batch comes from `special` crops when given."""
    n_special = int(config.batch_size * config.root_oversample) if len(special) else 0
    crops = []
    for k in rng.integers(len(special), size=n_special) if n_special else []:
        i, start = special[k]
        crops.append(clips[i][start : start + config.window])
    for i in rng.integers(len(clips), size=config.batch_size - n_special):
        start = rng.integers(len(clips[i]) - config.window + 1)
        crops.append(clips[i][start : start + config.window])
    return torch.from_numpy(np.stack(crops))


def learning_rate(step: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def vq_loss(model: MotionVQVAE, normalizer: Normalizer, x: torch.Tensor,
            config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    recon, _, commit, perplexity = model(x)
    rec = F.l1_loss(recon, x)
    vel = F.l1_loss(recon[:, 1:] - recon[:, :-1], x[:, 1:] - x[:, :-1])
    loss = rec + config.vel * vel + config.commit * commit
    stats = {"rec": rec.item(), "vel": vel.item(), "commit": commit.item(), "perplexity": perplexity.item()}
    if config.root:
        root = F.l1_loss(recon[..., :4], x[..., :4])
        loss = loss + config.root * root
        stats["root"] = root.item()
    if config.heading:
        yaw_std = float(normalizer.std[0])
        heading = F.l1_loss(torch.cumsum(recon[..., 0], -1) * yaw_std, torch.cumsum(x[..., 0], -1) * yaw_std)
        loss = loss + config.heading * heading
        stats["heading"] = heading.item()
    if config.root_mse:
        root_mse = F.mse_loss(recon[..., :3], x[..., :3])
        loss = loss + config.root_mse * root_mse
        stats["root_mse"] = root_mse.item()
    if config.joints:
        spec = spec_for_dim(x.shape[-1])
        used = slice(0, spec.ric.stop)  # all that recover_from_ric reads; slicing first keeps backward cheap
        joints = F.l1_loss(recover_from_ric_torch(normalizer.denormalize(recon)[..., used], spec.joints_num),
                           recover_from_ric_torch(normalizer.denormalize(x)[..., used], spec.joints_num))
        loss = loss + config.joints * joints
        stats["joints"] = joints.item()
    return loss, {"loss": loss.item(), **stats}


@torch.no_grad()
def evaluate(tokenizer: MotionTokenizer, clips: list[np.ndarray]) -> dict[str, float]:
    """Whole clips (cropped to a multiple of 4 frames) through encode/decode: mean joint position error in
    metres (global, and with the root trajectory removed), code perplexity and number of codes used."""
    was_training = tokenizer.model.training
    tokenizer.model.eval()
    step = tokenizer.config.downsample
    err_sum = pose_err_sum = frames = 0.0
    counts = np.zeros(tokenizer.config.nb_code)
    for clip in clips:
        clip = clip[: len(clip) // step * step]
        codes = tokenizer.codes_from_features(clip)
        counts += np.bincount(codes, minlength=len(counts))
        pred, true = tokenizer.joints_from_codes(codes), recover_from_ric(clip)
        err_sum += np.linalg.norm(pred - true, axis=-1).mean(-1).sum()
        pose_err_sum += np.linalg.norm((pred - pred[:, :1]) - (true - true[:, :1]), axis=-1).mean(-1).sum()
        frames += len(clip)
    tokenizer.model.train(was_training)
    prob = counts / counts.sum()
    return {"joint_error_m": err_sum / frames, "pose_error_m": pose_err_sum / frames,
            "perplexity": float(np.exp(-(prob * np.log(prob + 1e-12)).sum())),
            "used_codes": int((counts > 0).sum()), "clips": len(clips)}


def save_checkpoint(path: Path, step: int, model: MotionVQVAE, optimizer: torch.optim.Optimizer,
                    rng: np.random.Generator, config: TrainConfig, process_rng: list[dict] | None = None) -> None:
    """`process_rng`: every process's random state in a multi-process run (rank 0's is also the top-level one)."""
    state = {"step": step, "model": model.state_dict(), "ema": model.vqvae.quantizer.ema_state(),
             "optimizer": optimizer.state_dict(), "numpy_rng": json.dumps(rng.bit_generator.state),
             "torch_rng": torch.get_rng_state(), "config": json.dumps(asdict(config))}
    device = model.vqvae.quantizer.codebook.device
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    if process_rng:
        state["process_rng"] = process_rng
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)  # never leave a half-written checkpoint


def train(data_dir: str | Path, config: TrainConfig, out_dir: str | Path, resume: bool = False,
          max_minutes: float | None = None, device: str | None = None,
          console: Console | None = None) -> dict[str, float] | None:
    """Train (or resume) and return the final evaluation ({} on processes other than the main one); None when
    max_minutes ran out first (the checkpoint is saved, run again with resume=True). device: "cpu", "cuda" or
    "cuda:N" for a single-process run, default CUDA when available; `accelerate launch` places its processes."""
    console = console or Console(stderr=True)
    if device and device.startswith("cuda:"):
        torch.cuda.set_device(device)  # accelerate's single-process "cuda" is the current device
    accelerator = make_accelerator(cpu=device == "cpu")
    main = accelerator.is_main_process
    device = accelerator.device
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    check_data_dir(data_dir)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(process_seed(config.seed, accelerator))

    normalizer = Normalizer.load(data_dir)
    if normalizer.dim != config.model.input_dim:
        raise ValueError(f"{data_dir} has {normalizer.dim}-d features but the config says input_dim {config.model.input_dim}")
    train_clips = [normalizer.normalize(c) for c in load_split(data_dir, "train", config.window)]
    special = root_crops(train_clips, config.window) if config.root_oversample else []
    test_clips = load_split(data_dir, "test", config.model.downsample)
    if config.eval_clips:
        test_clips = [test_clips[i] for i in np.random.default_rng(0).permutation(len(test_clips))[: config.eval_clips]]
    if main:
        processes = f" x {accelerator.num_processes} processes" if accelerator.num_processes > 1 else ""
        console.print(f"{len(train_clips)} training clips, {len(test_clips)} held-out clips from {data_dir}, "
                      f"on {device}{processes}")

    model = MotionVQVAE(config.model).to(device)
    reseed_process(config.seed, accelerator)
    tokenizer = MotionTokenizer(model, normalizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.99), weight_decay=config.weight_decay,
                                  fused=True)  # one kernel instead of a loop over tensors: much faster on CPU too
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / CHECKPOINT
    step = 0
    if not resume and ckpt_path.exists():
        raise ValueError(f"{ckpt_path} exists: pass --resume to continue that run, or choose another --out")
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"nothing to resume: {ckpt_path} does not exist")
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if json.loads(state["config"]) != json.loads(json.dumps(asdict(config))):
            raise ValueError(f"{ckpt_path} was trained with a different config; resume with the same --config")
        model.load_state_dict(state["model"])
        model.vqvae.quantizer.load_ema_state(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        if accelerator.num_processes == 1:
            rng.bit_generator.state = json.loads(state["numpy_rng"])
            torch.set_rng_state(state["torch_rng"])
            if device.type == "cuda" and "cuda_rng" in state:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
        elif not restore_random_state(accelerator, rng, state.get("process_rng", [])) and main:
            console.print("the checkpoint comes from another number of processes: each process starts a fresh "
                          "data stream")
        step = state["step"]
        if main:
            console.print(f"resumed from step {step}")
    elif config.init_from:
        if not Path(config.init_from).is_file():
            raise FileNotFoundError(f"init_from: {config.init_from} does not exist; point it at the ckpt.pt of the "
                                    "earlier run (e.g. phase 1 of the recipe)")
        state = torch.load(config.init_from, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        model.vqvae.quantizer.load_ema_state(state["ema"])
        if main:
            console.print(f"starting from {config.init_from} (step {state.get('step', '?')} of that run)")
    # after the checks above: no process may write a checkpoint before every process has passed them
    net, optimizer = accelerator.prepare(model, optimizer)

    def checkpoint() -> None:
        process_rng = gather_random_states(accelerator, rng) if accelerator.num_processes > 1 else None
        checksums = replica_checksums(accelerator, net)
        if main:
            save_checkpoint(ckpt_path, step, model, optimizer, rng, config, process_rng)
            if checksums:
                log.write(json.dumps({"step": step, "replica_checksums": checksums}) + "\n")

    start = time.monotonic()
    model.train()
    with open(out_dir / "train_log.jsonl", "a") if main else open(os.devnull, "w") as log, \
            Progress(TextColumn("[bold]train-vq"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                     TimeRemainingColumn(), console=console, disable=not main) as progress:
        task = progress.add_task("", total=config.max_steps, completed=step)
        while step < config.max_steps:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config)
            batch = sample_batch(train_clips, config, rng, special)
            loss, stats = vq_loss(net, normalizer, batch.to(device), config)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            step += 1
            progress.update(task, completed=step,
                            description=f"loss {stats['loss']:.4f} rec {stats['rec']:.4f} ppl {stats['perplexity']:.0f}")
            if step % 50 == 0:
                log.write(json.dumps({"step": step, **stats}) + "\n")
            if main and step % config.eval_every == 0 and step < config.max_steps:
                metrics = evaluate(tokenizer, test_clips)
                log.write(json.dumps({"step": step, "eval": metrics}) + "\n")
                progress.console.print(f"step {step}: held-out joint error {metrics['joint_error_m'] * 100:.2f} cm, "
                                       f"pose error {metrics['pose_error_m'] * 100:.2f} cm, {metrics['used_codes']} codes used")
            out_of_time = max_minutes is not None and any_process(accelerator,
                                                                  time.monotonic() - start > 60 * max_minutes)
            if step % config.save_every == 0 or out_of_time:
                checkpoint()
            if out_of_time and step < config.max_steps:
                if main:
                    console.print(f"stopped at step {step} after {max_minutes} min; continue with --resume")
                return None
        checkpoint()
    if not main:
        return {}
    metrics = evaluate(tokenizer, test_clips)
    tokenizer.save(out_dir)
    (out_dir / "metrics.json").write_text(json.dumps({"step": step, **metrics}, indent=2) + "\n")
    console.print(f"done: held-out joint error {metrics['joint_error_m'] * 100:.2f} cm over {metrics['clips']} clips, "
                  f"{metrics['used_codes']}/{config.model.nb_code} codes used (perplexity {metrics['perplexity']:.1f}); "
                  f"tokenizer saved to {out_dir}")
    return metrics
