"""`irg-motion train-llm` and `irg-motion eval-llm`: train the motion LLM on the corpus, and measure the loop."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-llm", help="train the motion LLM (stage-1 tasks, stage-2 traces or both)",
        description="Train the motion LLM in time-boxed chunks; run the same command again to resume from "
                    "OUT_DIR/ckpt.pt. When max_steps is reached the model is written to EXPORT_DIR/llm. "
                    "Runs as one process, or under `accelerate launch` / torchrun on many (docs/training.md).")
    p.add_argument("--config", required=True, help="training config JSON, e.g. training/configs/llm_builtin.json")
    p.add_argument("--corpus", help="corpus folder (HumanML3D layout; labels.jsonl unless the config sets "
                                    "annotations); overrides the config")
    p.add_argument("--out-dir", help="checkpoint folder; overrides the config")
    p.add_argument("--export-dir", help="model folder to write llm/ into; overrides the config")
    p.add_argument("--max-minutes", type=float, help="stop and checkpoint after this long (default: the config's)")
    p.set_defaults(func=run_train)

    p = subparsers.add_parser("eval-llm", help="label match of the loop's motions on held-out corpus prompts")
    p.add_argument("--model", default="builtin", help="'builtin' or a model folder")
    p.add_argument("--corpus", required=True, help="corpus folder (labels.jsonl, train.txt, test.txt)")
    p.add_argument("--count", type=int, default=200, help="held-out prompts to run (default 200)")
    p.add_argument("--rounds", type=int, default=3, help="max rounds per prompt (default 3)")
    p.add_argument("--out", help="write the numbers as JSON here")
    p.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from training.corpus import describe_difference
    from training.llm.train import TrainConfig, train

    config = TrainConfig.from_json(args.config, corpus=args.corpus, out_dir=args.out_dir, export_dir=args.export_dir,
                                   chunk_minutes=args.max_minutes)
    done = train(config, describe_difference)
    if not done and PartialState().is_main_process:   # one line, also when `accelerate launch` runs several
        print("not finished yet: run the same command again to continue")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from backend.models.loader import load_model
    from training.llm.evaluate import evaluate, write_report

    result = evaluate(load_model(args.model, "cpu"), args.corpus, count=args.count, max_rounds=args.rounds)
    print(json.dumps(asdict(result), indent=2))
    if args.out:
        write_report(result, args.out)
    return 0
