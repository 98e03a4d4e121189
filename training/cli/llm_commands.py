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

    p = subparsers.add_parser(
        "self-assess", help="the model's own first rounds on train prompts, judged, for self-assessment traces",
        description="Run the loop's first round (greedy) for random train prompts, name what each motion shows "
                    "(the label of the evaluator's nearest train motion) and write the judgement against the "
                    "prompt's label as JSONL; the train-llm config key self_assessment trains on it.")
    p.add_argument("--model", required=True, help="model folder (or 'builtin') whose first rounds to judge")
    p.add_argument("--data", required=True, help="procedural corpus folder (labels.jsonl, train.txt)")
    p.add_argument("--count", type=int, default=1500, help="train prompts to run (default 1500)")
    p.add_argument("--evaluator", default=None, help="evaluator folder (default: the built-in one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="JSONL file to write")
    p.set_defaults(func=run_self_assess)


def run_self_assess(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.progress import Progress

    from backend.models.loader import load_model
    from training.evaluator import load_evaluator
    from training.llm import self_assessment

    if not (Path(args.data) / "labels.jsonl").is_file():
        raise FileNotFoundError(f"{args.data}: no labels.jsonl; self-assess needs the procedural corpus' labels")
    model, evaluator = load_model(args.model, "cpu"), load_evaluator(args.evaluator)
    with Progress() as progress:
        task = progress.add_task("self-assess", total=args.count)
        rounds = self_assessment.collect(model, evaluator, args.data, args.count, args.seed,
                                         lambda: progress.advance(task))
    self_assessment.save(rounds, args.out)
    right = sum(r.right for r in rounds)
    print(f"{len(rounds)} first rounds judged ({right} right, {len(rounds) - right} to refine) -> {args.out}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from training.corpus import describe_difference
    from training.distributed import leave_process_group
    from training.llm.train import TrainConfig, train

    config = TrainConfig.from_json(args.config, corpus=args.corpus, out_dir=args.out_dir, export_dir=args.export_dir,
                                   chunk_minutes=args.max_minutes)
    done = train(config, describe_difference)
    if not done and PartialState().is_main_process:   # one line, also when `accelerate launch` runs several
        print("not finished yet: run the same command again to continue")
    leave_process_group()
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
