"""`irg-motion train-grpo`: stage-3 GRPO of a motion LLM (training/grpo, docs/grpo.md)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-grpo", help="stage-3 GRPO: format + alignment + fidelity rewards, with trl",
        description="Train a motion LLM with GRPO on the captions of a HumanML3D-layout folder. Checkpoints go to "
                    "OUT/checkpoint-N (continue with --resume), the log to OUT/log.jsonl and the trained model to "
                    "OUT/model, a folder `irg-motion serve --model` loads. On GPUs, run the same command under "
                    "`accelerate launch -m backend.cli.main train-grpo ...` (docs/grpo.md).")
    p.add_argument("--config", required=True, help="GRPO config JSON, e.g. training/configs/grpo_builtin.json")
    p.add_argument("--model", help="'builtin', a model folder or a release folder to start from; overrides the config")
    p.add_argument("--data", help="HumanML3D-layout folder (texts/, new_joint_vecs/, train.txt); overrides the config")
    p.add_argument("--out", help="output folder; overrides the config")
    p.add_argument("--max-steps", type=int, help="optimizer steps to run (-1: the config's epochs); overrides the config")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from training.distributed import leave_process_group
    from training.grpo.train import GRPOTrainConfig, train_grpo

    config = GRPOTrainConfig.from_json(args.config, model=args.model, data=args.data, out=args.out,
                                       max_steps=args.max_steps)
    train_grpo(config, resume=args.resume)
    leave_process_group()
    return 0
