"""What a GRPO run reports, on the main process only: every log (trl's metrics, the raw reward terms, the mean
rounds per completion) as one JSON line in OUT/log.jsonl, and a rich progress bar in place of the Trainer's tqdm
bar and its printed dicts."""
from __future__ import annotations

import json
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback

# Shown on the bar: (log key, label).
SHOWN = (("reward", "reward"), ("rewards/format_reward/mean", "format"), ("raw/tm_distance", "tm"),
         ("raw/mm_distance", "mm"), ("rounds", "rounds"), ("completions/mean_length", "tokens"))


class JsonlLog(TrainerCallback):
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


class RichProgress(TrainerCallback):
    def __init__(self):
        self.progress: Progress | None = None
        self.task = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.progress = Progress(TextColumn("GRPO"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.fields[summary]}"))
            self.progress.start()
            self.task = self.progress.add_task("grpo", total=state.max_steps, completed=state.global_step, summary="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is not None and logs:
            summary = "  ".join(f"{label} {logs[key]:.3g}" for key, label in SHOWN if logs.get(key) is not None)
            self.progress.update(self.task, summary=summary)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
