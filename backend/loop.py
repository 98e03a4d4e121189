"""The interleaved generate / assess / refine loop (IRMoGen) over one model, in auto or step mode.

The model writes the stage-2 v3 trace. The loop drives `transformers` generation piece by piece over one
KV cache that lives as long as the session (so step-mode pauses cost nothing to resume):

    <think>[plan]...[/plan]\\n[analyze]  ANALYSIS  [/analyze]\\n[plan]...[/plan]\\n[generate]<Motion>  CODES
    </Motion>[/generate]\\n[plan]...[/plan]\\n[assess]Assessment:  ASSESSMENT ... Refinement: ... [/assess]
    \\n[plan]I need to refine the motion according to the instruction.[/plan]\\n[generate]<Motion>  CODES ...

The fixed plan strings and tags are fed (one prefill each) instead of sampled: their text is fixed by the
format, so this is format-constrained decoding, and the span length is fixed by `seconds` (only code
tokens inside a span, then `</Motion>`). The model writes the analysis, the codes, the assessment and the
refinement. A round is returned the moment its `[/assess]` closes; whether it is final is the model's
"Refinement: No refinements needed." (or `max_rounds`).
"""
from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from backend import prompts
from backend.trace import parse_analysis, parse_round

MODES = ("auto", "step")
ANALYSIS_TOKENS = 64      # budget for the analysis text
ASSESSMENT_TOKENS = 96    # budget for "Assessment: ... Refinement: ...[/assess]"
ANALYSIS_STOPS = ("[/analyze]",)
# The assessment ends at `[/assess]`; a model that runs on into other blocks is stopped there (a garbled round).
ASSESSMENT_STOPS = ("[/assess]", "[/plan]", "[generate]", "</think>", prompts.MOTION_START)


@dataclass
class LoopOptions:
    seconds: float = 4.0
    max_rounds: int = 3
    mode: str = "auto"            # "auto" | "step"
    seed: int | None = None
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 0.9


@dataclass
class Progress:
    round: int
    stage: str      # "planning" | "generating" | "assessing" | "decoding"
    tokens: int     # tokens the model has produced in this session so far


@dataclass
class Round:
    index: int                 # 0-based
    joints: np.ndarray         # (T,22,3) float32, metres, Y up, facing +Z; shape (0,22,3) when error
    codes: list[int]           # VQ codes of the motion span
    assessment: str
    instruction: str           # refinement instruction used for the next round (the user's, if they gave one)
    final: bool                # the model judged it final (or max_rounds reached)
    error: str = ""            # non-empty for a garbled trace: a readable reason
    text: str = ""             # the round's raw trace text, from [generate] to [/assess]


class Cancelled(Exception):
    """The session's cancel event was set; raised within one decoding step."""


class _CodesOnly(LogitsProcessor):
    """Inside a motion span: only `<Motion_k>` tokens may be sampled."""

    def __init__(self, first_code: int, nb_code: int):
        self.first, self.last = first_code, first_code + nb_code

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        masked = torch.full_like(scores, float("-inf"))
        masked[:, self.first:self.last] = scores[:, self.first:self.last]
        return masked


class _StopAt(StoppingCriteria):
    """Stops when the new text ends with one of `stops`, or when the cancel event is set."""

    def __init__(self, tokenizer, stops: tuple[str, ...], start: int, cancel: threading.Event | None):
        self.tokenizer, self.stops, self.start, self.cancel = tokenizer, stops, start, cancel

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        done = bool(self.cancel is not None and self.cancel.is_set())
        if not done and self.stops:
            tail = self.tokenizer.decode(input_ids[0, max(self.start, input_ids.shape[1] - 8):])
            done = tail.endswith(self.stops)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class _ProgressStreamer(BaseStreamer):
    """Counts generated tokens and reports progress every few tokens (the first `put` is the prompt)."""

    def __init__(self, session: "LoopSession", stage: str, every: int = 8):
        self.session, self.stage, self.every, self.skipped_prompt = session, stage, every, False

    def put(self, value) -> None:
        if not self.skipped_prompt:
            self.skipped_prompt = True
            return
        self.session._tokens += int(value.numel())
        if self.session._tokens % self.every == 0:
            self.session._report(self.stage)

    def end(self) -> None:
        pass


class LoopSession:
    """One prompt's loop. `next_round()` yields rounds one by one; `rounds()` runs auto mode to the end."""

    def __init__(self, model, prompt: str, options: LoopOptions, cancel: threading.Event | None = None,
                 on_progress: Callable[[Progress], None] | None = None):
        self.model, self.options, self.cancel, self.on_progress = model, options, cancel, on_progress
        self._check_options(options)
        fitted = model.fit_text(prompt, what="prompt")
        self.prompt: str = fitted.text
        self.warnings: list[str] = fitted.warnings
        self.analysis = ""
        self.finished = False
        self.history: list[Round] = []
        self.codes_per_round = max(1, int(round(options.seconds * model.fps / model.frames_per_code)))
        self._ids: list[int] = model.encode(prompts.trace_context(self.prompt), bos=True)
        self._cache = DynamicCache(config=model.lm.config)
        self._tokens = 0
        self._refinement_cut = 0   # where the last round's refinement text starts in the token sequence

    def _check_options(self, o: LoopOptions) -> None:
        m = self.model
        if o.mode not in MODES:
            raise ValueError(f"mode must be 'auto' or 'step', got {o.mode!r}")
        if not isinstance(o.seconds, (int, float)) or not m.min_seconds <= o.seconds <= m.max_seconds:
            raise ValueError(f"seconds must be between {m.min_seconds:g} and {m.max_seconds:g} for {m.model_id}, "
                             f"got {o.seconds!r}")
        if not isinstance(o.max_rounds, int) or not 1 <= o.max_rounds <= m.max_rounds_limit:
            raise ValueError(f"max_rounds must be an integer from 1 to {m.max_rounds_limit}, got {o.max_rounds!r}")
        if o.do_sample and not (o.temperature > 0 and 0 < o.top_p <= 1):
            raise ValueError(f"sampling needs temperature > 0 and 0 < top_p <= 1, got {o.temperature}, {o.top_p}")

    # -- decoding primitives ------------------------------------------------------------------------------------
    def _report(self, stage: str) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(round=len(self.history), stage=stage, tokens=self._tokens))

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            self.finished = True
            raise Cancelled("cancelled")

    def _feed(self, text: str) -> None:
        """Append text fixed by the format; it is prefilled with the next generation call."""
        self._ids += self.model.encode(text)

    def _generate(self, max_new: int, stage: str, stops: tuple[str, ...] = (), codes: int = 0) -> list[int]:
        """Let the model write (`codes` > 0: exactly that many motion codes); returns the new ids."""
        self._check_cancel()
        m, o = self.model, self.options
        if o.seed is not None:
            torch.manual_seed(o.seed * 1009 + len(self.history) * 2 + (codes > 0))
        processors = LogitsProcessorList([_CodesOnly(m.motion_ids.first_code, m.motion_ids.nb_code)] if codes else [])
        start = len(self._ids)
        sampling = dict(do_sample=True, temperature=o.temperature, top_p=o.top_p) if o.do_sample else \
            dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode(), warnings.catch_warnings():
            # transformers 5 renames generate's `past_key_values` to `cache`; the old name works up to 6.0
            warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated", category=FutureWarning)
            out = m.lm.generate(
                input_ids=torch.tensor([self._ids], device=m.lm.device),
                attention_mask=torch.ones(1, len(self._ids), dtype=torch.long, device=m.lm.device),
                past_key_values=self._cache, use_cache=True,
                max_new_tokens=codes or max_new, min_new_tokens=codes or 0,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([_StopAt(m.tokenizer, stops, start, self.cancel)]),
                streamer=_ProgressStreamer(self, stage), pad_token_id=m.tokenizer.pad_token_id,
                **sampling,
            )
        self._ids = out[0].tolist()
        if self._ids[-1] == m.tokenizer.eos_token_id and len(self._ids) > start:
            self._ids.pop()   # never fed to the model, so the cache is unchanged
        self._check_cancel()
        return self._ids[start:]

    # -- the loop ---------------------------------------------------------------------------------------------
    def _splice_instruction(self, instruction: str) -> str:
        """Replace the model's refinement text of the last round with the user's; returns what the model reads."""
        fitted = self.model.fit_text(instruction, what="instruction")
        self.warnings += fitted.warnings
        cut = self._refinement_cut
        self._ids = self._ids[:cut]
        surplus = self._cache.get_seq_length() - cut
        if surplus > 0:
            try:
                self._cache.crop(-surplus)   # a negative count removes that many tokens (transformers 4.x and 5.x)
            except (ValueError, NotImplementedError):   # e.g. sliding-window layers: prefill again instead
                self._cache = DynamicCache(config=self.model.lm.config)
        self._feed(" " + fitted.text + "[/assess]")
        return fitted.text

    def _close_analysis(self, analysis_start: int) -> None:
        """After the model wrote its analysis: close the block if the budget ran out, keep the text, plan on."""
        written = self.model.decode(self._ids[analysis_start:])
        if not written.endswith("[/analyze]"):   # out of budget: close the block for the model
            self._feed("[/analyze]")
            written += "[/analyze]"
        self.analysis = parse_analysis("[analyze]" + written)
        self._feed(f"\n[plan]{prompts.PLAN_GENERATE}[/plan]\n")

    def _refinement_start(self, round_start: int) -> int:
        """The token index just after the round's `Refinement:` (a well-formed round always has one)."""
        for k in range(len(self._ids), round_start, -1):
            if "\nRefinement:" not in self.model.decode(self._ids[round_start:k]):
                return k + 1
        raise RuntimeError("a well-formed round has no `Refinement:`")

    def next_round(self, instruction: str | None = None) -> Round | None:
        """Generate the next round; `instruction` replaces the model's refinement text of the last round."""
        self._check_cancel()
        instruction = (instruction or "").strip() or None
        if len(self.history) >= self.options.max_rounds or (self.finished and instruction is None):
            self.finished = True
            return None
        if self.history and self.history[-1].error:
            self.finished = True
            return None
        if not self.history:
            self._report("planning")
            self._feed(f"<think>[plan]{prompts.PLAN_ANALYZE}[/plan]\n[analyze]")
            analysis_start = len(self._ids)
            self._generate(ANALYSIS_TOKENS, "planning", stops=ANALYSIS_STOPS)
            self._close_analysis(analysis_start)
        else:
            if instruction is not None:
                self.history[-1].instruction = self._splice_instruction(instruction)
                self.history[-1].final = False
            self.finished = False
            self._feed(f"\n[plan]{prompts.PLAN_REFINE}[/plan]\n")
        round_start = len(self._ids)
        self._feed("[generate]<Motion>")
        self._report("generating")
        self._generate(0, "generating", codes=self.codes_per_round)
        self._feed(f"</Motion>[/generate]\n[plan]{prompts.PLAN_ASSESS}[/plan]\n[assess]Assessment:")
        self._report("assessing")
        self._generate(ASSESSMENT_TOKENS, "assessing", stops=ASSESSMENT_STOPS)
        text = self.model.decode(self._ids[round_start:])
        result = self._finish_round(text)
        if not result.error:
            self._refinement_cut = self._refinement_start(round_start)
        return result

    def _finish_round(self, text: str) -> Round:
        parsed = parse_round(text, self.model.motion_ids.nb_code)
        if not parsed.error and not text.endswith("[/assess]"):
            parsed.error = "the model stopped before closing its assessment"
        joints = np.zeros((0, 22, 3), dtype=np.float32)
        if not parsed.error:
            self._report("decoding")
            joints = self.model.joints_from_codes(parsed.codes)
        final = parsed.final or bool(parsed.error) or len(self.history) + 1 >= self.options.max_rounds
        result = Round(index=len(self.history), joints=joints, codes=parsed.codes, assessment=parsed.assessment,
                       instruction="" if parsed.final else parsed.refinement, final=final, error=parsed.error,
                       text=text)
        self.history.append(result)
        self.finished = final
        return result

    def rounds(self) -> Iterator[Round]:
        """Auto mode: every round the moment it is complete, until the model is satisfied or max_rounds."""
        while (r := self.next_round()) is not None:
            yield r

    @property
    def trace(self) -> str:
        """Everything the model has read and written so far (after ` Response:`)."""
        text = self.model.decode(self._ids)
        return text.split(prompts.RESPONSE_TAG, 1)[-1]

