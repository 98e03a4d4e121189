"""Auto-mode traces on vLLM (`serve --engine vllm`, `generate --engine vllm`): a thin adapter under the phase driver.

The trace itself is `backend.batch_loop.TraceRow`'s, the same one the transformers batch runs and the tests check
on the CPU: what to feed, what each phase may write, when it ends, how it is parsed. This adapter only turns a
row's phase into `SamplingParams` (`phase_sampling`: code spans through `allowed_token_ids`, the analysis and the
assessment through `stop` strings, greedy as `temperature=0`), submits every row's whole token sequence as a
`TokensPrompt` in one `LLM.generate` call per phase (prefix caching makes re-submitting the growing trace cheap),
and cuts what comes back with the row's own stop rule.

vLLM needs CUDA, so it is imported only here, inside the functions, and only when asked for: the default
transformers path never imports it. Differences from the transformers engines: a phase comes back when the whole
call returns (no round goes out mid-phase), a cancel takes effect at the next phase, and a stop string that ends
inside a token stops vLLM but not the row's rule (the row then reads on as if the phase had ended).
"""
from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # torch-free at import: `require_vllm` answers at once
    from backend.batch_loop import TraceRow

VLLM_MISSING = ("--engine vllm needs the vllm package, which is not installed (pip install vllm; it needs CUDA); "
                "the default --engine transformers needs nothing more")
EXPORT_DIR = ".vllm"   # in a release folder: the merged checkpoint in Hugging Face form, written once for vLLM


class EngineUnavailable(ValueError):
    """The engine asked for cannot run here; the message says what to install or use instead."""


def require_vllm() -> None:
    """Fail early, in one line, when vllm is missing (without importing it: that takes seconds and a GPU)."""
    if importlib.util.find_spec("vllm") is None:
        raise EngineUnavailable(VLLM_MISSING)


def phase_sampling(row: TraceRow) -> dict:
    """The `SamplingParams` arguments of the row's current phase."""
    phase, o, ids = row.phase, row.options, row.model.motion_ids
    args = dict(max_tokens=phase.max_new, skip_special_tokens=False, spaces_between_special_tokens=False)
    if phase.codes:   # exactly max_new codes: nothing else can be written, so nothing can end the span early
        args.update(allowed_token_ids=list(range(ids.first_code, ids.first_code + ids.nb_code)),
                    min_tokens=phase.max_new)
    if phase.stops:
        args.update(stop=list(phase.stops), include_stop_str_in_output=True)
    if o.do_sample:   # the single-prompt loop's seed of this phase, per request
        seed = None if o.seed is None else o.seed * 1009 + len(row.history) * 2 + int(phase.codes)
        args.update(temperature=o.temperature, top_p=o.top_p, seed=seed)
    else:
        args.update(temperature=0.0)
    return args


def vllm_model_dir(model, source: str) -> Path:
    """The Hugging Face folder vLLM loads: a model folder's `llm/`, or, for a release folder (or `random-2b`), the
    merged LM and its tokenizer written once with `save_pretrained` (to DIR/.vllm, or a temporary folder)."""
    from backend.models.loader import BUILTIN_DIR, LLM_DIR

    if source == "random-2b":
        out = Path(tempfile.mkdtemp(prefix="irg-motion-vllm-"))
    else:
        folder = BUILTIN_DIR if source == "builtin" else Path(source).expanduser()
        if (folder / LLM_DIR / "config.json").is_file():
            return folder / LLM_DIR
        out = folder / EXPORT_DIR
    if not (out / "config.json").is_file():
        model.lm.save_pretrained(out)
        model.tokenizer.save_pretrained(out)
    return out


class VllmEngine:
    """A `PhaseEngine` on `vllm.LLM`. `gpu_memory_utilization` leaves room for the transformers model, which
    stays loaded for step-mode jobs and the motion decoder."""

    def __init__(self, model_dir: str | Path, gpu_memory_utilization: float = 0.5, dtype: str = "auto", seed: int = 0):
        require_vllm()
        from vllm import LLM

        self.llm = LLM(model=str(model_dir), tokenizer=str(model_dir), dtype=dtype, seed=seed,
                       enable_prefix_caching=True, gpu_memory_utilization=gpu_memory_utilization)

    def run_phase(self, rows: dict[int, TraceRow]) -> Iterator[tuple[int, list[int]]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        live = {}
        for i, row in rows.items():
            if row.cancelled:
                yield i, []
            else:
                live[i] = row
        if not live:
            return
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(row.ids)) for row in live.values()],
                                    [SamplingParams(**phase_sampling(row)) for row in live.values()], use_tqdm=False)
        for (i, row), output in zip(live.items(), outputs):
            new = row.cut(list(output.outputs[0].token_ids))
            for _ in new:
                row.count_token()
            yield i, new
