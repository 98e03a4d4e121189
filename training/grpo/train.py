"""Stage-3 GRPO of a motion LLM with trl's GRPOTrainer (reference/irg-motionllm.md section 5).

Read top to bottom: the config (a JSON file; an unknown key is an error) -> the starting model folder (a release
folder is first written as a model folder, because trl re-reads the reference model from the policy's folder)
-> the prompt set (training/grpo/data.py) -> the rewards (training/grpo/rewards.py) -> trl's GRPOTrainer (an HF
Trainer: CPU with `use_cpu`, or GPUs under `accelerate launch` / `torchrun`, DeepSpeed from `deepspeed`) with
checkpoints every `save_steps` and resume -> the export: a model folder that backend.models.loader.load_model
reads (llm/ with loop_limits.json, and the VQ-VAE files beside it).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from backend.config_file import check_keys, read_json_object
from backend.models.loader import (BUILTIN_DIR, LIMITS_FILE, LLM_DIR, MotionModel, is_release_folder, load_model,
                                   missing_files)
from training.evaluator import load_evaluator
from training.evaluator.data import check_data_dir
from training.grpo.callbacks import JsonlLog, RichProgress
from training.grpo.data import prompt_rows
from training.grpo.policy_tokens import POLICY_TOKENS, motion_only
from training.grpo.rewards import TERMS, MotionRewards, format_reward
from training.grpo.spans import MotionSpanCodes, constrain_generate

REWARDS = ("format",) + TERMS   # reward_weights keys, in the order the reward functions are given to trl
LIMITS = ("fps", "min_seconds", "max_seconds", "max_prompt_chars", "max_rounds_limit")


def default_weights() -> dict[str, float]:
    return {"format": 1.0, "tm_distance": 1.0, "mm_distance": 1.0, "motion_quality": 0.5, "duration": 0.5}


@dataclass
class GRPOTrainConfig:
    model: str = "builtin"                 # "builtin" or a model folder (llm/ + VQ-VAE files) or a release folder
    data: str = "data/corpus"              # HumanML3D-layout folder
    out: str = "runs/grpo_builtin"         # checkpoints, log.jsonl, and the export in OUT/model
    evaluator: str | None = None           # evaluator folder; None: the shipped one (training/evaluator/builtin)
    split: str = "train"
    num_generations: int = 4               # group size G
    batch_size: int = 4                    # completions per device per step (a multiple of num_generations)
    gradient_accumulation_steps: int = 1
    max_steps: int = 300                   # -1: run `epochs` epochs
    epochs: float = 1.0
    lr: float = 2e-5
    lr_scheduler: str = "cosine"
    warmup: float = 0.0                    # warmup steps, or a fraction of all steps when below 1
    beta: float = 0.01                     # KL to the starting model
    epsilon: float = 0.2                   # ratio clip
    loss_type: str = "grpo"                # per-sequence mean then batch mean, as the release
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0                         # 0: off (the release sampled with HF's default 50)
    max_completion_length: int = 512
    reward_weights: dict[str, float] = field(default_factory=default_weights)
    norm_in_group: bool = True             # min-max every non-format reward within its group
    constrain_spans: bool = True           # only code tokens inside motion spans (training/grpo/spans.py)
    save_steps: int = 50
    save_total_limit: int | None = 2
    logging_steps: int = 1
    seed: int = 0
    use_cpu: bool = False
    bf16: bool = False                     # bf16 autocast over fp32 weights
    activation_checkpointing: bool = False  # recompute activations in backward (saves GPU memory)
    attn: str | None = None                # attention implementation of the policy, e.g. "flash_attention_2"
    policy_tokens: str = "all"             # "all" (the release) or "motion": the loss trains motion codes only
    deepspeed: dict | str | None = None    # a DeepSpeed config (dict or JSON path), as TrainingArguments takes it
    threads: int = 1                       # torch CPU threads

    @classmethod
    def from_json(cls, path: str | Path, **overrides) -> "GRPOTrainConfig":
        """The config in `path`; `overrides` that are not None replace its values (the CLI's options)."""
        path = Path(path)
        data = read_json_object(path, "training/configs/grpo_builtin.json")
        check_keys(data, cls, str(path))
        config = cls(**(data | {k: v for k, v in overrides.items() if v is not None}))
        config.check(str(path))
        return config

    def check(self, source: str) -> None:
        def bad(message: str) -> ValueError:
            return ValueError(f"{source}: {message}")
        if self.num_generations < 2:
            raise bad(f"num_generations must be at least 2 (GRPO compares completions of a prompt), got {self.num_generations}")
        if self.batch_size < 1 or self.batch_size % self.num_generations:
            raise bad(f"batch_size ({self.batch_size}) must be a multiple of num_generations ({self.num_generations}), "
                      "so each process scores whole groups")
        unknown = sorted(set(self.reward_weights) - set(REWARDS))
        if unknown:
            raise bad(f"unknown reward {unknown[0]!r} in reward_weights; rewards: {', '.join(REWARDS)}")
        if self.policy_tokens not in POLICY_TOKENS:
            raise bad(f"policy_tokens must be one of {', '.join(map(repr, POLICY_TOKENS))}, got {self.policy_tokens!r}")
        if not any(self.reward_weights.get(name, 0) for name in REWARDS):
            raise bad("every reward weight is 0; give at least one reward a weight")
        if self.max_steps == 0 or self.max_steps < -1:
            raise bad(f"max_steps must be positive, or -1 to run `epochs` epochs; got {self.max_steps}")
        if self.max_completion_length < 1 or self.lr <= 0 or self.beta < 0 or self.save_steps < 1:
            raise bad("max_completion_length, lr and save_steps must be positive and beta at least 0")


def model_limits(model: MotionModel) -> dict:
    return {name: getattr(model, name) for name in LIMITS}


def write_limits(model: MotionModel, folder: Path) -> None:
    """loop_limits.json beside the LLM and the VQ-VAE files at the top: with them, folder is a model folder."""
    (folder / LLM_DIR / LIMITS_FILE).write_text(json.dumps(model_limits(model), indent=2) + "\n")
    model.motion_tokenizer.save(folder)


def starting_folder(source: str, out: Path) -> Path:
    """The model folder to train from. trl builds the reference model with from_pretrained on the policy's folder,
    which a release folder is not (its LM is assembled at load time), so a release is written to OUT/init first.
    Under several processes call it inside `args.main_process_first(local=False)`: one process writes, on OUT's
    shared file system."""
    folder = BUILTIN_DIR if source == "builtin" else Path(source).expanduser()
    if not folder.is_dir() or not is_release_folder(folder):
        return folder   # load_model names what is missing
    init = out / "init"
    if missing_files(init):
        release = load_model(str(folder), "cpu", cpu_threads=None)
        release.lm.save_pretrained(str(init / LLM_DIR))
        release.tokenizer.save_pretrained(str(init / LLM_DIR))
        write_limits(release, init)
    return init


def last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out)) if out.is_dir() else None


def train_grpo(c: GRPOTrainConfig, resume: bool = False, log=print) -> Path:
    """Train, export to OUT/model and return that folder. `resume` continues from OUT's last checkpoint."""
    out = Path(c.out)
    checkpoint = last_checkpoint(out)
    if resume and checkpoint is None:
        raise FileNotFoundError(f"{out}: no checkpoint-N folder to resume from; run without --resume to start")
    if not resume and checkpoint is not None:
        raise ValueError(f"{out} already holds {Path(checkpoint).name}; pass --resume to continue it, "
                         "or choose a new --out")
    check_data_dir(c.data, c.split)
    torch.set_num_threads(c.threads)

    from datasets import Dataset
    from transformers.trainer_callback import ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    names = [name for name in REWARDS if c.reward_weights.get(name, 0)]
    args = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=c.batch_size, num_generations=c.num_generations,
        gradient_accumulation_steps=c.gradient_accumulation_steps, max_steps=c.max_steps, num_train_epochs=c.epochs,
        learning_rate=c.lr, lr_scheduler_type=c.lr_scheduler, warmup_steps=c.warmup, beta=c.beta, epsilon=c.epsilon,
        loss_type=c.loss_type, scale_rewards="group", temperature=c.temperature, top_p=c.top_p, top_k=c.top_k,
        max_completion_length=c.max_completion_length, reward_weights=[float(c.reward_weights[n]) for n in names],
        save_strategy="steps", save_steps=c.save_steps, save_total_limit=c.save_total_limit,
        logging_steps=c.logging_steps, seed=c.seed, data_seed=c.seed, use_cpu=c.use_cpu, bf16=c.bf16, fp16=False,
        activation_checkpointing=c.activation_checkpointing, deepspeed=c.deepspeed, report_to="none",
        remove_unused_columns=False, dataloader_num_workers=0, log_completions=False,
    )
    with args.main_process_first(local=False, desc="writing the release as a model folder"):
        folder = starting_folder(c.model, out)
    model = load_model(str(folder), "cpu", cpu_threads=None)
    if c.attn:
        model.lm.set_attn_implementation(c.attn)
    evaluator = load_evaluator(c.evaluator)
    rows, skipped = prompt_rows(c.data, c.split, model.fit_text)
    log(f"{len(rows)} prompts from {c.data} ({c.split})" + (f", {skipped} captions the model cannot read left out"
                                                              if skipped else ""))
    rewards = MotionRewards(model.motion_tokenizer.to(args.device), evaluator, c.data, fps=model.fps,
                            norm_in_group=c.norm_in_group, every_round="round_alignment" in names)
    functions = {"format": format_reward, **rewards.functions()}
    if c.constrain_spans:
        max_codes = int(model.max_seconds * model.fps) // model.frames_per_code
        constrain_generate(model.lm, MotionSpanCodes(model.motion_ids, max_codes))
    trainer_class = GRPOTrainer if c.policy_tokens == "all" else \
        motion_only(GRPOTrainer, model.motion_ids.first_code, model.motion_ids.nb_code)
    trainer = trainer_class(model=model.lm, reward_funcs=[functions[n] for n in names], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=model.tokenizer,
                          callbacks=[JsonlLog(out / "log.jsonl"), RichProgress()])
    trainer.remove_callback(ProgressCallback)
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        (out / "grpo_config.json").write_text(json.dumps(asdict(c), indent=2) + "\n")
    trainer.train(resume_from_checkpoint=checkpoint if resume else None)

    export = out / "model"
    model.lm.config.use_cache = True   # trl turns the KV cache off for training; the product's loop wants it
    trainer.save_model(str(export / LLM_DIR))   # gathers sharded weights; writes the tokenizer too
    if trainer.is_world_process_zero():
        (export / LLM_DIR / "training_args.bin").unlink(missing_ok=True)   # a model folder, not a checkpoint
        write_limits(model, export)
        log(f"exported to {export}")
    return export
