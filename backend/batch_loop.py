"""Several auto-mode prompts through the IRMoGen v3 loop at once, in lockstep over the fixed format.

`LoopSession` serves one prompt (and step mode, with its user instructions). For concurrent auto-mode jobs the
same trace is split in two:

- the **phase driver**, `TraceRow`: one prompt's trace. It feeds the fixed format text itself, says what the
  model must write next (a `Phase`: the analysis, exactly n motion codes, or the assessment, with the stop strings
  and budgets of `LoopSession`), decides when a phase is over, and parses what came back into `Round`s with
  `LoopSession`'s own code;
- an **engine** that writes one phase for many rows at once: `TransformersBatch` here (one batched KV cache), or
  `VllmEngine` (backend/models/vllm_engine.py).

`drive` runs rows on an engine and yields `(row, Round)` the moment a row's round is complete, and `(row, RowEnd)`
once per row when it stops taking part (finished, cancelled, failed); `run_batch` makes the rows from prompts
first (a prompt the loop cannot use ends its row at once). Every row feeds the same format text, so rows move
through the phases together; a row that finished a phase early waits (padded, masked out), and a row the model
judged final, or at `max_rounds`, leaves the batch.

Greedy results equal `LoopSession`'s for each prompt: a row prefills exactly the chunks of tokens `LoopSession`
would (the token that ended a phase is fed with the next format text), padding is masked out, and position ids
count only the row's own tokens. Sampling shares one random stream over the batch, so `LoopOptions.seed` does not
reproduce a single-prompt run here.
"""
from __future__ import annotations

import inspect
import logging
import threading
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import DynamicCache, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from backend import prompts
from backend.loop import ANALYSIS_STOPS, ANALYSIS_TOKENS, ASSESSMENT_STOPS, ASSESSMENT_TOKENS, LoopOptions, LoopSession, Progress, Round

log = logging.getLogger("irg_motion.batch")

STOP_TAIL_TOKENS = 8      # the stop test decodes this many last tokens, as `loop._StopAt` does
PROGRESS_EVERY = 8        # a progress report every this many tokens of a row, as `loop._ProgressStreamer` does


@dataclass(frozen=True)
class Phase:
    """What the model writes next for one row."""

    stage: str                     # progress stage: "planning" | "generating" | "assessing"
    max_new: int                   # token budget; a code span has exactly this many tokens
    stops: tuple[str, ...] = ()    # the phase ends when the text written so far ends with one of these
    codes: bool = False            # only `<Motion_k>` tokens may be written


@dataclass(frozen=True)
class RowEnd:
    """A row stops taking part; the last event of every row."""

    reason: str        # "finished" | "cancelled" | "bad_prompt" | "failed"
    message: str = ""


class TraceRow(LoopSession):
    """One prompt's auto-mode trace, driven from outside one phase at a time.

    It is a `LoopSession` for the option checks, prompt fitting, progress reports and round parsing; the engine
    replaces `LoopSession._generate`: it writes `phase` for the ids in `ids`, ends it where `phase_done` says,
    and hands the new ids to `give`, which feeds the next format text and sets the next `phase` (None: done)."""

    def __init__(self, model, prompt: str, options: LoopOptions, cancel: threading.Event | None = None,
                 on_progress: Callable[[Progress], None] | None = None):
        if options.mode != "auto":
            raise ValueError("a batch runs auto mode only; step mode runs in LoopSession")
        super().__init__(model, prompt, options, cancel=cancel, on_progress=on_progress)
        self._script = self._phases()
        self.phase: Phase | None = next(self._script)

    @property
    def ids(self) -> list[int]:
        """Every token of the row so far (context, fed format text and what the model wrote)."""
        return self._ids

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _phases(self) -> Generator[Phase, None, None]:
        """`LoopSession.next_round` in auto mode, as the phases the engine generates (it appends to `_ids`)."""
        self._report("planning")
        self._feed(f"<think>[plan]{prompts.PLAN_ANALYZE}[/plan]\n[analyze]")
        analysis_start = len(self._ids)
        yield Phase("planning", ANALYSIS_TOKENS, stops=ANALYSIS_STOPS)
        self._close_analysis(analysis_start)
        while True:
            round_start = len(self._ids)
            self._feed("[generate]<Motion>")
            self._report("generating")
            yield Phase("generating", self.codes_per_round, codes=True)
            self._feed(f"</Motion>[/generate]\n[plan]{prompts.PLAN_ASSESS}[/plan]\n[assess]Assessment:")
            self._report("assessing")
            yield Phase("assessing", ASSESSMENT_TOKENS, stops=ASSESSMENT_STOPS)
            if self._finish_round(self.model.decode(self._ids[round_start:])).final:
                return
            self._feed(f"\n[plan]{prompts.PLAN_REFINE}[/plan]\n")

    def phase_done(self, new: list[int]) -> bool:
        """Whether `new` (the ids written so far in this phase) ends it: the budget, `<eos>`, or a stop string at
        the end of the text of its last few tokens (`LoopSession`'s rule)."""
        p = self.phase
        if len(new) >= p.max_new or new[-1] == self.model.tokenizer.eos_token_id:
            return True
        return bool(p.stops) and self.model.tokenizer.decode(new[-STOP_TAIL_TOKENS:]).endswith(p.stops)

    def cut(self, new: list[int]) -> list[int]:
        """`new` up to where `phase_done` ends the phase: for engines that stop by their own rule and may run on."""
        for k in range(1, len(new) + 1):
            if self.phase_done(new[:k]):
                return new[:k]
        return new

    def count_token(self) -> None:
        self._tokens += 1
        if self._tokens % PROGRESS_EVERY == 0:
            self._report(self.phase.stage)

    def give(self, new: list[int]) -> Round | None:
        """Take what the engine wrote for `phase` and move on; returns the round this completed, if any."""
        if new and new[-1] == self.model.tokenizer.eos_token_id:
            new = new[:-1]   # `<eos>` ends the phase but is never fed to the model (as in LoopSession)
        self._ids += new
        done = len(self.history)
        self.phase = next(self._script, None)
        return self.history[-1] if len(self.history) > done else None


class PhaseEngine(Protocol):
    def run_phase(self, rows: dict[int, TraceRow]) -> Iterator[tuple[int, list[int]]]:
        """Write every row's current phase; yield (row, new ids) for each row as soon as its phase is over
        (at once, with what it has, for a cancelled row). A row is yielded once per call."""


def check_sampling(rows: Sequence[TraceRow]) -> None:
    """A batch samples with one setting: rows must agree on greedy or (temperature, top_p)."""
    settings = {(r.options.do_sample,) + ((r.options.temperature, r.options.top_p) if r.options.do_sample else ())
                for r in rows}
    if len(settings) > 1:
        raise ValueError(f"the rows of a batch must share their sampling settings, got {sorted(settings)}")


def run_batch(model, requests: Sequence[tuple[str, LoopOptions]], engine: PhaseEngine | None = None,
              cancels: Sequence[threading.Event | None] | None = None,
              on_progress: Callable[[int, Progress], None] | None = None) -> Iterator[tuple[int, Round | RowEnd]]:
    """Run auto-mode prompts as one batch (default engine: `TransformersBatch`): `drive` over their rows, after
    `(row, RowEnd("bad_prompt", why))` for each prompt or option set the loop cannot use."""
    rows: dict[int, TraceRow] = {}
    for i, (prompt, options) in enumerate(requests):
        report = None if on_progress is None else (lambda p, i=i: on_progress(i, p))
        try:
            rows[i] = TraceRow(model, prompt, options, cancel=cancels[i] if cancels else None, on_progress=report)
        except ValueError as exc:   # PromptError too
            yield i, RowEnd("bad_prompt", str(exc))
    if rows:
        yield from drive(rows, engine if engine is not None else TransformersBatch(model))


def drive(rows: dict[int, TraceRow], engine: PhaseEngine) -> Iterator[tuple[int, Round | RowEnd]]:
    """Run `rows` to their ends on `engine`. Yields `(row, Round)` the moment a row's round is complete and
    `(row, RowEnd)` once when a row stops; a row that fails ends alone, the others go on."""
    check_sampling(list(rows.values()))
    rows = dict(rows)
    while rows:
        for i, new in engine.run_phase(dict(rows)):
            row = rows[i]
            if row.cancelled:
                del rows[i]
                yield i, RowEnd("cancelled")
                continue
            try:
                result = row.give(new)
            except Exception as exc:   # this row's parsing or motion decoding failed
                log.exception("batch row %d failed", i)
                del rows[i]
                yield i, RowEnd("failed", f"the model failed on this prompt ({type(exc).__name__})")
                continue
            if result is not None:
                yield i, result
            if row.phase is None:
                del rows[i]
                yield i, RowEnd("finished")


class TransformersBatch:
    """Writes one phase for many rows with the `transformers` model over one batched DynamicCache.

    A row's pending tokens (the token that ended its last phase, then the fed format text) are left-padded to
    the longest row's and prefilled together; then one token per row per step. A row whose phase is over feeds a
    pad until every row is done. Pads have attention mask 0 and never count as positions, so each row sees
    exactly its own sequence. Rows that leave the batch are dropped from the cache at the next phase.

    `lm.generate` is not used because it cannot end the phase of each row at its own budget (code spans of
    different lengths), hand a row back mid-phase (its round goes out while the others still write), or keep
    a waiting row's pads out of its positions."""

    def __init__(self, model):
        self.model = model
        self.cache = DynamicCache(config=model.lm.config)
        self.order: list[int] = []            # row index of each batch position
        self.cached: dict[int, int] = {}      # how many of each row's ids the cache holds
        self.mask = torch.zeros(0, 0, dtype=torch.long, device=model.lm.device)   # (batch, cached columns)
        self._keep_logits = "logits_to_keep" in inspect.signature(model.lm.forward).parameters

    def run_phase(self, rows: dict[int, TraceRow]) -> Iterator[tuple[int, list[int]]]:
        for i in [i for i, r in rows.items() if r.cancelled]:
            yield i, []
        live = {i: r for i, r in rows.items() if not r.cancelled}
        if not live:
            return
        self._select(list(live))
        batch = [live[i] for i in self.order]
        logits = self._prefill(batch)
        new: list[list[int]] = [[] for _ in batch]
        writing = [True] * len(batch)
        while True:
            tokens = self._choose(logits, batch, writing)
            for b, row in enumerate(batch):
                if not writing[b]:
                    continue
                if row.cancelled:
                    writing[b] = False
                    yield self.order[b], new[b]
                    continue
                new[b].append(tokens[b])
                row.count_token()
                if row.phase_done(new[b]):
                    writing[b] = False   # its last token stays pending: fed with the next format text
                    yield self.order[b], new[b]
            if not any(writing):
                return
            logits = self._step(tokens, writing)

    def _select(self, keep: list[int]) -> None:
        """Drop the rows that left; new rows (the first phase) join with an empty cache."""
        if self.order and keep != self.order:
            positions = [self.order.index(i) for i in keep]
            index = torch.tensor(positions, device=self.mask.device)
            self.cache.batch_select_indices(index)
            self.mask = self.mask[index]
            for i in set(self.order) - set(keep):
                del self.cached[i]
            self.order = keep
        if not self.order:
            self.order = keep
            self.cached = {i: 0 for i in keep}
            self.mask = torch.zeros(len(keep), 0, dtype=torch.long, device=self.mask.device)

    def _prefill(self, batch: list[TraceRow]) -> torch.Tensor:
        chunks = [row.ids[self.cached[i]:] for i, row in zip(self.order, batch)]
        width = max(len(c) for c in chunks)
        device = self.mask.device
        ids = torch.full((len(batch), width), self.model.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        positions = torch.zeros(len(batch), width, dtype=torch.long)
        for b, (i, chunk) in enumerate(zip(self.order, chunks)):
            pad = width - len(chunk)
            ids[b, pad:] = torch.tensor(chunk)
            mask[b, pad:] = 1
            positions[b, pad:] = torch.arange(self.cached[i], self.cached[i] + len(chunk))
            self.cached[i] += len(chunk)
        return self._forward(ids.to(device), mask.to(device), positions.to(device))

    def _step(self, tokens: list[int], writing: list[bool]) -> torch.Tensor:
        """Feed each writing row its last token; a row whose phase is over feeds a masked pad."""
        pad = self.model.tokenizer.pad_token_id
        ids, mask, positions = [], [], []
        for b, i in enumerate(self.order):
            ids.append(tokens[b] if writing[b] else pad)
            mask.append(int(writing[b]))
            positions.append(self.cached[i])
            self.cached[i] += int(writing[b])
        device = self.mask.device
        return self._forward(torch.tensor(ids, device=device)[:, None], torch.tensor(mask, device=device)[:, None],
                             torch.tensor(positions, device=device)[:, None])

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The next-token logits (float32) of every row after `ids`."""
        self.mask = torch.cat([self.mask, mask], dim=1)
        extra = dict(logits_to_keep=1) if self._keep_logits else {}
        with torch.no_grad(), warnings.catch_warnings():
            # transformers 5 renames `past_key_values` to `cache`; the old name works on 4.x and 5.x (as in loop.py)
            warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated", category=FutureWarning)
            out = self.model.lm(input_ids=ids, attention_mask=self.mask, position_ids=positions,
                                past_key_values=self.cache, use_cache=True, **extra)
        return out.logits[:, -1].float()

    def _choose(self, logits: torch.Tensor, batch: list[TraceRow], writing: list[bool]) -> list[int]:
        """Each row's next token: greedy or sampled; only motion codes for rows inside a code span."""
        m = self.model.motion_ids
        for b, row in enumerate(batch):
            if writing[b] and row.phase.codes:
                logits[b, : m.first_code] = float("-inf")
                logits[b, m.first_code + m.nb_code:] = float("-inf")
        o = batch[0].options
        if not o.do_sample:
            return logits.argmax(dim=-1).tolist()
        warp = LogitsProcessorList([TemperatureLogitsWarper(o.temperature), TopPLogitsWarper(o.top_p)])
        return torch.multinomial(torch.softmax(warp(None, logits), dim=-1), 1)[:, 0].tolist()
