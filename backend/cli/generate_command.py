"""`irg-motion generate "PROMPT"`: run the interleaved loop in process and write the motion with every round."""
from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from backend.loop import LoopOptions, LoopSession, Round
from backend.models.loader import load_model
from backend.motion.io import Motion, MotionRound, save_motion

STEP_HELP = "[a]ccept, [r]eject (the model's instruction), or type your own instruction"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="text -> motion with the generate / assess / refine loop")
    p.add_argument("prompt", help="what the character does, e.g. \"a person waves with the right hand\"")
    p.add_argument("--out", type=Path, required=True, help="motion file (.npz) or preview video (.mp4)")
    p.add_argument("--rounds", type=int, default=3, help="most generate/assess rounds (default 3)")
    p.add_argument("--seconds", type=float, default=4.0, help="motion length in seconds (default 4)")
    p.add_argument("--seed", type=int, default=None, help="seed for sampling (reproducible runs)")
    p.add_argument("--sample", action="store_true", help="sample (temperature / top-p) instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--mode", choices=("auto", "step"), default="auto",
                   help="auto: the model decides when it is done; step: you accept or reject every round")
    p.add_argument("--model", default="builtin", help="'builtin' or a model folder")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--engine", choices=("transformers", "vllm"), default="transformers",
                   help="what generates: transformers (default) or vllm (auto mode, CUDA, `pip install vllm`)")
    p.set_defaults(func=run)


def _ask(console: Console, r: Round) -> tuple[bool, str | None]:
    """Step mode: (accepted, instruction) from the terminal."""
    answer = console.input(f"round {r.index + 1}: {escape(STEP_HELP)} > ").strip()
    if answer.lower() in ("a", "accept", ""):
        return True, None
    if answer.lower() in ("r", "reject"):
        return False, None
    return False, answer


def _write(out: Path, prompt: str, rounds: list[Round], fps: float, console: Console) -> None:
    good = [r for r in rounds if not r.error]
    if not good:
        raise ValueError("no round produced a usable motion; nothing was written (see the errors above)")
    motion = Motion(joints=good[-1].joints, fps=fps, text=prompt,
                    rounds=[MotionRound(r.joints, r.codes, r.assessment, r.instruction, r.final) for r in good])
    if out.suffix == ".mp4":
        from backend.motion.preview import write_preview  # imageio and ffmpeg load only for previews

        write_preview(out, motion)
    else:
        save_motion(out, motion)
    console.print(f"wrote {out}: {motion.frames} frames, {len(good)} round(s)")


def _vllm_rounds(session, model_source: str) -> Iterator[Round]:
    """The auto-mode rounds of a `TraceRow` on vLLM, as they come."""
    from backend.batch_loop import RowEnd, drive
    from backend.models.vllm_engine import VllmEngine, vllm_model_dir

    for _, event in drive({0: session}, VllmEngine(vllm_model_dir(session.model, model_source))):
        if isinstance(event, RowEnd):
            if event.reason == "failed":
                raise ValueError(f"{event.message}; rerun with --engine transformers to see the traceback")
            return
        yield event


def run(args: argparse.Namespace) -> int:
    console = Console()
    if args.out.suffix not in (".npz", ".mp4"):
        raise ValueError(f"--out must end in .npz (motion) or .mp4 (preview), got {args.out.name!r}")
    if args.engine == "vllm":
        from backend.models.vllm_engine import require_vllm

        if args.mode != "auto":
            raise ValueError("--engine vllm runs auto mode; step mode runs on the default --engine transformers")
        require_vllm()
    t0 = time.perf_counter()
    model = load_model(args.model, args.device)
    options = LoopOptions(seconds=args.seconds, max_rounds=args.rounds, mode=args.mode, seed=args.seed,
                          do_sample=args.sample, temperature=args.temperature, top_p=args.top_p)
    cancel = threading.Event()
    if args.engine == "vllm":
        from backend.batch_loop import TraceRow

        session = TraceRow(model, args.prompt, options, cancel=cancel)
        stream = _vllm_rounds(session, args.model)
        next_round = lambda _instruction: next(stream, None)  # auto mode: there is never an instruction
    else:
        session = LoopSession(model, args.prompt, options, cancel=cancel)
        next_round = session.next_round
    for note in session.warnings:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    console.print(f"model {model.model_id} loaded in {time.perf_counter() - t0:.1f} s", style="dim")
    rounds: list[Round] = []
    instruction = None
    try:
        while (r := next_round(instruction)) is not None:
            if r.index == 0 and session.analysis:
                console.print(f"analysis: {escape(session.analysis)}", highlight=False)
            rounds.append(r)
            head = f"round {r.index + 1} ({len(r.joints)} frames)" + (" \\[final]" if r.final else "")
            if r.error:
                console.print(f"{head}: [red]error:[/] {escape(r.error)}", highlight=False)
            else:
                console.print(f"{head}: {escape(r.assessment)}", highlight=False)
                if r.instruction:
                    console.print(f"  refinement: {escape(r.instruction)}", highlight=False)
            instruction = None
            if args.mode == "step" and not r.error:
                accepted, instruction = _ask(console, r)
                if accepted:
                    break
                if instruction is None and r.final:
                    console.print("the model judged this round final; type an instruction to go on")
                    accepted, instruction = _ask(console, r)
                    if accepted or instruction is None:
                        break
    except KeyboardInterrupt:
        cancel.set()
        console.print("interrupted; writing the rounds so far")
    _write(args.out, args.prompt, rounds, model.fps, console)
    return 0
