"""Does the loop pay for itself? Per-round text-motion metrics of the generate / assess / refine loop.

For held-out clips of a HumanML3D-layout folder, each repeat draws one random caption per clip, runs the loop
(auto mode, greedy unless sampling is asked for) with the clip's own duration, and scores the motion of every
round with the evaluator (training/evaluator): R-precision top-1/2/3 and MM-Dist in chunks of 32, FID against
the real motions of the whole split, and Diversity (training/metrics.py). Results per round set are the mean
and 95 % interval over repeats.

Round sets:
- ``first``: every prompt's round-1 motion; ``final``: every prompt's last motion (the one the user gets);
- ``round k`` (k >= 2): only the prompts whose loop reached round k;
- ``first (refined)`` / ``final (refined)``: the prompts that got more than one round, before and after;
- ``real clips``: the same captions with the held-out clips' own motions (cropped as in the real-data protocol),
  the ceiling at this number of prompts.

Motion handling: a round's joints are turned into features with backend.motion.features.extract_features
(as the corpus and HumanML3D were made). A motion with fewer feature frames than the evaluator's minimum
(its unit_length, 4 frames) is padded by repeating its last frame up to that length, and counted (`padded`).
A garbled round has no motion; it is left out of its round set and counted (`missing`); its prompt's
``final`` is its last round that has a motion. A set with fewer than 32 prompts in some repeat has no metrics.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from training import metrics
from training.evaluator.data import Item
from training.evaluator.evaluate import crop, text_input

FPS = 20.0
METRICS = ("top1", "top2", "top3", "mm_dist", "fid", "diversity")
LABELS = {"top1": "R-precision top-1", "top2": "R-precision top-2", "top3": "R-precision top-3",
          "mm_dist": "MM-Dist", "fid": "FID (vs real test)", "diversity": "Diversity", "prompts": "prompts in set"}


@dataclass
class Prompt:
    clip: str
    caption: str          # what the model reads
    eval_text: str        # what the evaluator reads (the caption, or word/POS tokens for Guo's)
    seconds: float
    real: np.ndarray      # the clip's features (T, D), unnormalised


@dataclass
class LoopRun:
    rounds: int                                   # rounds the loop used (garbled ones included)
    motions: list[np.ndarray | None]              # features per round; None for a garbled round
    padded: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def final(self) -> np.ndarray | None:
        return next((m for m in reversed(self.motions) if m is not None), None)


def check_arguments(count: int, repeats: int, max_rounds: int) -> None:
    if count < metrics.R_PRECISION_CHUNK:
        raise ValueError(f"--count must be at least {metrics.R_PRECISION_CHUNK} (one R-precision chunk), got {count}")
    if repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {repeats}")
    if max_rounds < 1:
        raise ValueError(f"--max-rounds must be at least 1, got {max_rounds}")


def select_items(items: Sequence[Item], count: int, rng: np.random.Generator) -> list[Item]:
    """`count` random items (all of them when there are fewer), in split order."""
    if len(items) < metrics.R_PRECISION_CHUNK:
        raise ValueError(f"the evaluation needs at least {metrics.R_PRECISION_CHUNK} clips, the split has {len(items)}")
    keep = np.sort(rng.choice(len(items), min(count, len(items)), replace=False))
    return [items[i] for i in keep]


def clip_seconds(features: np.ndarray, low: float, high: float) -> float:
    """The clip's duration (features have one frame fewer than the joints), clipped to what the model allows."""
    return float(np.clip((len(features) + 1) / FPS, low, high))


def draw_prompts(evaluator, items: Sequence[Item], rng: np.random.Generator, low: float, high: float) -> list[Prompt]:
    """One random caption per clip."""
    prompts = []
    for item in items:
        caption = item.captions[int(rng.integers(len(item.captions)))]
        prompts.append(Prompt(item.name, caption.text, text_input(evaluator, caption),
                              clip_seconds(item.features, low, high), item.features))
    return prompts


def pad_motion(features: np.ndarray, min_frames: int) -> tuple[np.ndarray, bool]:
    """Repeat the last frame up to `min_frames` frames; (features, whether it was padded)."""
    if len(features) >= min_frames:
        return features, False
    if len(features) == 0:
        raise ValueError("cannot pad an empty motion")
    return np.concatenate([features, np.repeat(features[-1:], min_frames - len(features), 0)]), True


def joints_to_features(joints: np.ndarray, min_frames: int) -> tuple[np.ndarray | None, bool]:
    """Round joints (T, 22, 3) -> (features, padded); None when there is no motion (garbled round, < 2 frames)."""
    from backend.motion.features import extract_features

    if joints is None or len(joints) < 2:
        return None, False
    return pad_motion(extract_features(np.asarray(joints, np.float64)).features, min_frames)


def run_prompt(model, prompt: Prompt, options, min_frames: int) -> LoopRun:
    """The loop in auto mode on one prompt, for the clip's duration; features of every round."""
    from backend.loop import LoopSession

    session = LoopSession(model, prompt.caption, replace(options, seconds=prompt.seconds))
    run = LoopRun(0, [], warnings=list(session.warnings))
    for r in session.rounds():
        features, padded = (None, False) if r.error else joints_to_features(r.joints, min_frames)
        run.motions.append(features)
        run.padded += padded
        run.rounds += 1
    return run


def round_sets(runs: Sequence[LoopRun], max_rounds: int) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Named sets of (prompt index, motion features), as described in the module docstring (no real clips)."""
    sets: dict[str, list[tuple[int, np.ndarray]]] = {"first": [], "final": []}
    for k in range(2, max_rounds + 1):
        sets[f"round {k}"] = []
    sets["first (refined)"], sets["final (refined)"] = [], []
    for i, run in enumerate(runs):
        if run.motions and run.motions[0] is not None:
            sets["first"].append((i, run.motions[0]))
        if run.final is not None:
            sets["final"].append((i, run.final))
        for k in range(2, min(run.rounds, max_rounds) + 1):
            if run.motions[k - 1] is not None:
                sets[f"round {k}"].append((i, run.motions[k - 1]))
        if run.rounds > 1 and run.motions[0] is not None and run.final is not None:
            sets["first (refined)"].append((i, run.motions[0]))
            sets["final (refined)"].append((i, run.final))
    return sets


def set_metrics(text_emb: np.ndarray, motion_emb: np.ndarray, real_emb: np.ndarray,
                rng: np.random.Generator) -> dict[str, float] | None:
    """One repeat of one set: the real-data protocol's metrics plus FID; None below one R-precision chunk.
    Pairs are shuffled first so that the chunks of 32 mix clips."""
    if len(text_emb) < metrics.R_PRECISION_CHUNK:
        return None
    order = rng.permutation(len(text_emb))
    values = metrics.text_motion_metrics(text_emb[order], motion_emb[order], rng)
    values["fid"] = metrics.frechet_distance(real_emb, motion_emb)
    values["prompts"] = float(len(text_emb))
    return values


def summarize_sets(per_repeat: Sequence[dict[str, dict[str, float] | None]]) -> dict[str, dict | None]:
    """{set: {metric: [mean, interval]}} over repeats; None for a set that lacked prompts in any repeat."""
    out: dict[str, dict | None] = {}
    for name in per_repeat[0]:
        values = [r[name] for r in per_repeat]
        out[name] = None if any(v is None for v in values) else \
            {k: list(metrics.mean_and_interval(v[k] for v in values)) for k in values[0]}
    return out


def rounds_histogram(runs: Sequence[LoopRun], max_rounds: int) -> dict[str, int]:
    counts = Counter(r.rounds for r in runs)
    return {str(k): int(counts.get(k, 0)) for k in range(0, max_rounds + 1) if k > 0 or counts.get(0)}


def evaluate_loop(model, evaluator, items: Sequence[Item], real_items: Sequence[Item], count: int, repeats: int,
                  options, seed: int = 42, progress: Callable[[int, int], None] | None = None) -> dict:
    """The whole evaluation; returns the JSON-ready result. `items` are the candidate held-out clips,
    `real_items` the split's clips that FID compares with. `progress(done, total)` is called per loop run."""
    from dataclasses import replace

    check_arguments(count, repeats, options.max_rounds)
    rng = np.random.default_rng(seed)
    chosen = select_items(items, count, rng)
    min_frames = evaluator.config.unit_length
    cache: dict[tuple, LoopRun] = {}   # greedy decoding: one caption and duration always give the same loop
    per_repeat, all_runs, started, total = [], [], time.perf_counter(), repeats * len(chosen)
    loop_seconds = 0.0
    for rep in range(repeats):
        prompts = draw_prompts(evaluator, chosen, rng, model.min_seconds, model.max_seconds)
        runs = []
        for i, p in enumerate(prompts):
            key = (p.caption, p.seconds)
            if options.do_sample:
                opts = replace(options, seed=seed * 100_003 + rep * 10_007 + i)
                key = key + (opts.seed,)
            else:
                opts = options
            if key not in cache:
                t0 = time.perf_counter()
                cache[key] = run_prompt(model, p, opts, min_frames)
                loop_seconds += time.perf_counter() - t0
            runs.append(cache[key])
            if progress is not None:
                progress(rep * len(prompts) + i + 1, total)
        all_runs += runs
        text_emb = evaluator.embed_texts([p.eval_text for p in prompts])
        real_emb = evaluator.embed_motions([crop(it.features, rng, evaluator.config.unit_length,
                                                 evaluator.config.max_frames) for it in real_items])
        results: dict[str, dict[str, float] | None] = {}
        for name, members in round_sets(runs, options.max_rounds).items():
            idx = [i for i, _ in members]
            motion_emb = evaluator.embed_motions([m for _, m in members]) if members else np.zeros((0, 1))
            results[name] = set_metrics(text_emb[idx], motion_emb, real_emb, rng) if members else None
        own = [crop(p.real, rng, evaluator.config.unit_length, evaluator.config.max_frames) for p in prompts]
        results["real clips"] = set_metrics(text_emb, evaluator.embed_motions(own), real_emb, rng)
        per_repeat.append(results)
    garbled = sum(m is None for r in all_runs for m in r.motions)
    return {
        "clips": len(chosen), "repeats": repeats, "prompts": len(all_runs),
        "max_rounds": options.max_rounds, "decoding": "sampling" if options.do_sample else "greedy",
        "temperature": options.temperature if options.do_sample else None,
        "top_p": options.top_p if options.do_sample else None, "seed": seed,
        "evaluator": str(evaluator.source), "model": getattr(model, "model_id", "?"),
        "real_motions_for_fid": len(real_items),
        "rounds_histogram": rounds_histogram(all_runs, options.max_rounds),
        "mean_rounds": float(np.mean([r.rounds for r in all_runs])),
        "garbled_rounds": int(garbled), "padded_motions": int(sum(r.padded for r in all_runs)),
        "loop_runs": len(cache), "loop_seconds": round(loop_seconds, 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "sets": summarize_sets(per_repeat),
        "per_repeat": per_repeat,
    }


def format_value(stat: list[float] | None, key: str) -> str:
    if stat is None:
        return "n/a"
    mean, interval = stat
    return f"{mean:.1f}" if key == "prompts" else f"{mean:.3f} ± {interval:.3f}"


def result_table(result: dict):
    from rich.table import Table

    sets = result["sets"]
    table = Table(title=f"loop rounds on {result['clips']} held-out clips × {result['repeats']} repeats "
                        f"({result['decoding']}, max {result['max_rounds']} rounds) under {result['evaluator']}; "
                        "± is the 95% interval over repeats")
    table.add_column("metric")
    for name in sets:
        table.add_column(name, justify="right")
    for key in METRICS + ("prompts",):
        table.add_row(LABELS[key], *[format_value(s[key] if s else None, key) for s in sets.values()])
    return table


def histogram_table(result: dict):
    from rich.table import Table

    table = Table(title=f"rounds used ({result['prompts']} loop runs; mean {result['mean_rounds']:.2f})")
    table.add_column("rounds")
    table.add_column("prompts", justify="right")
    for k, n in result["rounds_histogram"].items():
        table.add_row(k, str(n))
    return table


def plot(result: dict, path: str | Path) -> Path:
    """Per-round metrics (mean with 95 % interval) and the rounds histogram in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, s in result["sets"].items() if s is not None]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    for ax, key in zip(axes.flat, METRICS):
        means = [result["sets"][n][key][0] for n in names]
        errs = [result["sets"][n][key][1] for n in names]
        colors = ["tab:gray" if n == "real clips" else "tab:blue" for n in names]
        ax.bar(range(len(names)), means, yerr=errs, color=colors, capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(LABELS[key])
    ax = axes.flat[len(METRICS)]
    hist = result["rounds_histogram"]
    ax.bar(list(hist), list(hist.values()), color="tab:orange")
    ax.set_title("rounds used per prompt")
    ax.set_xlabel("rounds")
    axes.flat[-1].axis("off")
    axes.flat[-1].text(0, 0.5, f"{result['model']}, {result['clips']} clips × {result['repeats']} repeats\n"
                       f"{result['decoding']}, max {result['max_rounds']} rounds\nevaluator: {Path(result['evaluator']).name}",
                       fontsize=9, va="center")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def run(args) -> int:
    """`irg-motion evaluate`: check the arguments, load, evaluate, print the tables, write JSON and PNG."""
    import torch
    from rich.console import Console
    from rich.progress import Progress

    from backend.loop import LoopOptions
    from backend.models.loader import load_model
    from training.evaluator import load_evaluator
    from training.evaluator.data import check_data_dir, load_items

    check_arguments(args.count, args.repeats, args.max_rounds)
    if args.sample and not (args.temperature > 0 and 0 < args.top_p <= 1):
        raise ValueError(f"--sample needs --temperature > 0 and 0 < --top-p <= 1, got {args.temperature}, {args.top_p}")
    check_data_dir(args.data, args.split)
    items = load_items(args.data, args.split)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    model = load_model(args.model, "cpu", cpu_threads=1)
    if args.max_rounds > model.max_rounds_limit:
        raise ValueError(f"--max-rounds must be at most {model.max_rounds_limit} for {model.model_id}, got {args.max_rounds}")
    evaluator = load_evaluator(args.evaluator)
    torch.set_num_threads(1)
    options = LoopOptions(max_rounds=args.max_rounds, mode="auto", do_sample=args.sample,
                          temperature=args.temperature, top_p=args.top_p)
    with Progress(transient=True) as bar:
        task = bar.add_task("running the loop", total=args.repeats * min(args.count, len(items)))
        result = evaluate_loop(model, evaluator, items, items, args.count, args.repeats, options, args.seed,
                               lambda done, total: bar.update(task, completed=done))
    result.update(data=str(args.data), split=args.split)
    out.mkdir(parents=True, exist_ok=True)
    (out / "loop_eval.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out / "loop_eval.png")
    console = Console(width=max(Console().width, 160))   # the 8-column table stays readable when piped
    console.print(result_table(result))
    console.print(histogram_table(result))
    console.print(f"garbled rounds: {result['garbled_rounds']}, padded motions: {result['padded_motions']}; "
                  f"{result['loop_runs']} distinct loop runs in {result['loop_seconds']:.0f} s "
                  f"(wall {result['wall_seconds']:.0f} s); wrote {out / 'loop_eval.json'} and {out / 'loop_eval.png'}")
    return 0
