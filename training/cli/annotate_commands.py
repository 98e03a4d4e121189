"""`irg-motion annotate`: the data engine, a HumanML3D-layout data set -> the release's annotation files."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "annotate", help="write stage-1 task and stage-2 trace annotations for a data set (the data engine)",
        description="For every motion of a split: 4 negatives ranked by the evaluator's text-motion similarity "
                    "(progressive portion), then goal analyses, detailed descriptions, and an assessment plus a "
                    "refinement instruction per (caption, candidate), written as the release's annotation JSONs "
                    "(eight stage-1 files and stage2_traces.json; see docs/data_engine.md).")
    p.add_argument("--data", required=True, help="dataset folder in the HumanML3D layout")
    p.add_argument("--out", required=True, help="output folder for the annotation files")
    p.add_argument("--annotator", choices=("procedural", "llm"), default="procedural",
                   help="procedural: exact texts from the corpus' labels.jsonl; llm: a local instruct LLM "
                        "(default: %(default)s)")
    p.add_argument("--llm", help="with --annotator llm: a local Hugging Face model folder (e.g. gemma-2-2b-it)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="LLM answer limit (default: %(default)s)")
    p.add_argument("--evaluator", default="builtin",
                   help="'builtin' (the shipped evaluator) or an evaluator folder (default: %(default)s)")
    p.add_argument("--split", default="train", help="which split file to annotate (default: %(default)s)")
    p.add_argument("--negatives", type=int, default=4, help="negatives per motion (default: %(default)s)")
    p.add_argument("--portion", type=float, default=0.9,
                   help="progressive portion p: each round keeps the top 1-p of the pool (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument("--limit", type=int, help="annotate only the first N motions (negatives still from the whole split)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from training.data_engine import LLMAnnotator, ProceduralAnnotator, build_annotations
    from training.data_engine.motions import check_data_dir
    from training.evaluator import load_evaluator

    check_data_dir(args.data, args.split)   # before minutes of loading an LLM
    evaluator = load_evaluator(None if args.evaluator == "builtin" else args.evaluator)
    if args.annotator == "llm":
        if not args.llm:
            raise ValueError("--annotator llm needs --llm PATH, a local Hugging Face model folder (e.g. gemma-2-2b-it)")
        annotator = LLMAnnotator(args.llm, max_new_tokens=args.max_new_tokens)
    else:
        annotator = ProceduralAnnotator(seed=args.seed)
    files = build_annotations(args.data, args.out, annotator, evaluator, split=args.split, seed=args.seed,
                              n_neg=args.negatives, portion=args.portion, limit=args.limit)
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0
