"""Batched auto-mode generation (backend/batch_loop.py): greedy batches equal single-prompt `LoopSession`s, rounds
go out per row as they complete, a cancelled or bad row ends alone; the worker batches waiting jobs (in process on a
tiny model, and through a real `serve --max-batch 4` on loopback with the built-in model); the vLLM engine's phase
mapping and its missing-package error."""
from __future__ import annotations

import importlib.util
import json
import threading
from contextlib import ExitStack

import numpy as np
import pytest

from backend import protocol
from backend.batch_loop import RowEnd, TraceRow, TransformersBatch, drive, run_batch
from backend.cli.main import main
from backend.loop import LoopOptions, LoopSession, Round
from backend.models.loader import BUILTIN_DIR, load_model, missing_files
from backend.models.vllm_engine import phase_sampling
from backend.worker import Worker
from training.llm.tiny import make_tiny_model


TINY_REQUESTS = [("a person jumps", LoopOptions(seconds=1.0, max_rounds=3)),
                 ("a person walks in a circle", LoopOptions(seconds=2.0, max_rounds=3)),
                 ("a person waves with the right hand", LoopOptions(seconds=1.5, max_rounds=1))]
BUILTIN_REQUESTS = [("a person jumps forward", LoopOptions(seconds=3.0, max_rounds=3)),
                    ("a person walks in a circle slowly", LoopOptions(seconds=6.0, max_rounds=3)),
                    ("a person waves with the right hand", LoopOptions(seconds=2.0, max_rounds=2)),
                    ("a man runs forward then turns around and walks back", LoopOptions(seconds=4.5, max_rounds=4))]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_model(str(tiny_dir), device="cpu")


@pytest.fixture(scope="module")
def builtin():
    if missing_files(BUILTIN_DIR):
        pytest.skip("the built-in model is not trained in this checkout")
    return load_model("builtin", device="cpu")


def single(model, requests) -> list[LoopSession]:
    sessions = [LoopSession(model, prompt, options) for prompt, options in requests]
    for session in sessions:
        list(session.rounds())
    return sessions


def assert_same_rounds(got: list[Round], want: list[Round]) -> None:
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert (g.index, g.codes, g.assessment, g.instruction, g.final, g.error, g.text) == \
               (w.index, w.codes, w.assessment, w.instruction, w.final, w.error, w.text)
        assert np.array_equal(g.joints, w.joints)


def rows_for(model, requests, **kw) -> dict[int, TraceRow]:
    return {i: TraceRow(model, prompt, options, **kw) for i, (prompt, options) in enumerate(requests)}


def rounds_by_row(events) -> dict[int, list[Round]]:
    out: dict[int, list[Round]] = {}
    for i, event in events:
        if isinstance(event, Round):
            out.setdefault(i, []).append(event)
    return out


def check_greedy_batch(model, requests) -> None:
    rows = rows_for(model, requests)
    events = list(drive(rows, TransformersBatch(model)))
    got = rounds_by_row(events)
    for i, session in enumerate(single(model, requests)):
        assert_same_rounds(got[i], session.history)
        assert rows[i].trace == session.trace and rows[i].analysis == session.analysis
    ends = [(i, e.reason) for i, e in events if isinstance(e, RowEnd)]
    assert sorted(ends) == [(i, "finished") for i in range(len(requests))]


# -- the batch loop ------------------------------------------------------------------------------------------

def test_greedy_batch_equals_single_sessions_on_the_tiny_model(tiny):
    check_greedy_batch(tiny, TINY_REQUESTS)


@pytest.mark.slow
def test_greedy_batch_equals_single_sessions_on_the_builtin_model(builtin):
    check_greedy_batch(builtin, BUILTIN_REQUESTS)


@pytest.mark.slow
def test_each_round_goes_out_the_moment_its_row_completes_it(builtin):
    rows = rows_for(builtin, BUILTIN_REQUESTS)
    others_mid_phase = 0
    for i, event in drive(rows, TransformersBatch(builtin)):
        if not isinstance(event, Round):
            continue
        # Nothing of the next round is written yet: the row stands right after its next round's format text.
        assert event.final or rows[i].trace.endswith("[generate]<Motion>")
        # Rows that are still writing this same assessment do not hold the round back.
        others_mid_phase += sum(1 for j, r in rows.items() if j != i and r.phase is not None
                                and r.phase.stage == "assessing" and len(r.history) == event.index)
    assert others_mid_phase > 0


def test_a_cancelled_row_stops_at_once_and_the_others_finish(tiny):
    cancels = [threading.Event() for _ in TINY_REQUESTS]

    def progress(p):
        if p.tokens >= 8:
            cancels[1].set()

    rows = {i: TraceRow(tiny, prompt, options, cancel=cancels[i], on_progress=progress if i == 1 else None)
            for i, (prompt, options) in enumerate(TINY_REQUESTS)}
    events = list(drive(rows, TransformersBatch(tiny)))
    assert (1, RowEnd("cancelled")) in events and rows[1]._tokens <= 9 and not rows[1].history
    got = rounds_by_row(events)
    want = single(tiny, TINY_REQUESTS)
    for i in (0, 2):
        assert_same_rounds(got[i], want[i].history)


def test_a_bad_prompt_ends_only_its_row(tiny):
    requests = [TINY_REQUESTS[0], ("xqzv wrrpt", LoopOptions(seconds=1.0)), ("a person jumps", LoopOptions(seconds=60)),
                ("a person jumps", LoopOptions(mode="step")), TINY_REQUESTS[1]]
    events = list(run_batch(tiny, requests))
    ends = {i: e for i, e in events if isinstance(e, RowEnd)}
    assert ends[1].reason == "bad_prompt" and "knows none of the words" in ends[1].message
    assert ends[2].reason == "bad_prompt" and "seconds must be between" in ends[2].message
    assert ends[3].reason == "bad_prompt" and "auto mode only" in ends[3].message
    assert ends[0].reason == ends[4].reason == "finished"
    got = rounds_by_row(events)
    want = single(tiny, [requests[0], requests[4]])
    assert_same_rounds(got[0], want[0].history)
    assert_same_rounds(got[4], want[1].history)


def test_sampled_batches_write_whole_rounds_and_share_one_setting(tiny):
    sampled = LoopOptions(seconds=1.0, max_rounds=2, do_sample=True, temperature=1.5)
    events = list(run_batch(tiny, [("a person jumps", sampled), ("a person walks in a circle", sampled)]))
    for rounds in rounds_by_row(events).values():
        assert all(r.error or len(r.codes) == 5 for r in rounds)
    with pytest.raises(ValueError, match="share their sampling settings"):
        list(run_batch(tiny, [TINY_REQUESTS[0], ("a person jumps", sampled)]))


# -- the phase driver under other engines (vLLM) -----------------------------------------------------------

class Replay:
    """An engine that answers every phase with everything a finished row holds after that point: it runs past
    each phase's end, as vLLM may, and the row must cut it where the transformers batch stopped."""

    def __init__(self, done: dict[int, TraceRow]):
        self.done = done

    def run_phase(self, rows):
        for i, row in rows.items():
            yield i, row.cut(self.done[i].ids[len(row.ids):])


def test_the_phase_cut_finds_the_transformers_phase_ends(tiny):
    done = rows_for(tiny, TINY_REQUESTS)
    list(drive(done, TransformersBatch(tiny)))
    rows = rows_for(tiny, TINY_REQUESTS)
    got = rounds_by_row(drive(rows, Replay(done)))
    for i in done:
        assert rows[i].ids == done[i].ids
        assert_same_rounds(got[i], done[i].history)


def test_vllm_sampling_params_of_each_phase(tiny):
    row = TraceRow(tiny, "a person jumps", LoopOptions(seconds=1.0))
    analysis = phase_sampling(row)
    assert analysis["stop"] == ["[/analyze]"] and analysis["include_stop_str_in_output"]
    assert analysis["temperature"] == 0.0 and analysis["max_tokens"] == 64 and "allowed_token_ids" not in analysis
    row.give(row.cut(tiny.encode(" the goal is a jump.[/analyze]\n[plan]")))
    assert row.analysis == "the goal is a jump."
    codes = phase_sampling(row)
    first, nb = tiny.motion_ids.first_code, tiny.motion_ids.nb_code
    assert codes["allowed_token_ids"] == list(range(first, first + nb))
    assert codes["max_tokens"] == codes["min_tokens"] == 5 and "stop" not in codes
    sampled = TraceRow(tiny, "a person jumps", LoopOptions(seconds=1.0, do_sample=True, seed=7, top_p=0.8))
    assert {k: phase_sampling(sampled)[k] for k in ("temperature", "top_p", "seed")} == \
           {"temperature": 1.0, "top_p": 0.8, "seed": 7 * 1009}


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_asking_for_vllm_without_it_is_a_one_line_error(tiny_dir, tmp_path, capsys):
    out = str(tmp_path / "x.npz")
    assert main(["generate", "a person jumps", "--model", str(tiny_dir), "--engine", "vllm", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "pip install vllm" in err and "--engine transformers" in err and "Traceback" not in err
    assert main(["serve", "--model", str(tiny_dir), "--engine", "vllm", "--bind", "tcp://127.0.0.1:1"]) == 2
    assert "pip install vllm" in capsys.readouterr().err
    assert main(["generate", "a person jumps", "--engine", "vllm", "--mode", "step", "--out", out]) == 2
    assert "auto mode" in capsys.readouterr().err
    assert main(["serve", "--max-batch", "0"]) == 2 and "--max-batch" in capsys.readouterr().err


# -- the worker ------------------------------------------------------------------------------------------------

def run_worker(model, jobs: dict[str, tuple[str, dict]], max_batch: int, cancel: str | None = None) -> dict[str, list]:
    """Submit every job before the worker thread starts (so they wait together), run them, collect the messages."""
    messages: dict[str, list] = {job: [] for job in jobs}
    ended = threading.Event()
    started_cancel = threading.Event()

    def emit(peer, frames):
        msg = protocol.decode(frames, replies=True)
        messages[msg.job].append(msg)
        if msg.job == cancel and msg.type == "progress" and msg["tokens"] >= 8:
            started_cancel.set()
        if all(m and m[-1].type in ("done", "cancelled", "error") for m in messages.values()):
            ended.set()

    worker = Worker(model, emit, max_batch=max_batch)
    for job, (prompt, fields) in jobs.items():
        worker.submit(b"peer", job, dict(prompt=prompt, **fields))
    worker.start()
    if cancel is not None:
        assert started_cancel.wait(30)
        worker.cancel(b"peer", cancel)
    assert ended.wait(60), {job: [m.type for m in msgs] for job, msgs in messages.items()}
    worker.stop()
    return messages


def test_the_worker_batches_waiting_jobs_with_the_same_messages(tiny, caplog):
    jobs = {"a": ("a person jumps", dict(seconds=1.0)), "bad": ("xqzv wrrpt", {}),
            "b": ("a person walks in a circle", dict(seconds=2.0)),
            "c": ("a person waves with the right hand", dict(seconds=9.8, max_rounds=3))}
    with caplog.at_level("INFO", logger="irg_motion.worker"):
        messages = run_worker(tiny, jobs, max_batch=4, cancel="c")
    bad = messages["bad"]
    assert [m.type for m in bad] == ["error"] and bad[0]["code"] == "bad_prompt"
    assert messages["c"][-1].type == "cancelled" and sum(m.type == "round" for m in messages["c"]) <= 1
    want = single(tiny, [(p, LoopOptions(**f)) for p, f in (jobs["a"], jobs["b"])])
    for job, session in zip("ab", want):
        msgs = messages[job]
        rounds = [m for m in msgs if m.type == "round"]
        assert msgs[-1].type == "done" and msgs[-1]["rounds"] == len(rounds) == len(session.history)
        assert any(m.type == "progress" for m in msgs)
        for m, r in zip(rounds, session.history):
            assert (m["round"], m["codes"], m["assessment"], m["final"]) == (r.index, r.codes, r.assessment, r.final)
            assert np.array_equal(m.arrays["joints"], r.joints)
    batches = {r.job["job"]: r.job["batch"] for r in caplog.records if hasattr(r, "job")}
    assert batches == {"a": 4, "b": 4, "bad": 4, "c": 4}


# -- the server ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_serve_max_batch_runs_concurrent_jobs_like_sequential_ones(builtin, tmp_path):
    from test_server import JOB_TIMEOUT, ServerProcess, collect, request

    srv = ServerProcess(tmp_path / "server.log", "--max-batch", "4")
    try:
        limits = srv.wait_ready()["limits"]
        with ExitStack() as stack:
            *clients, busy = [stack.enter_context(protocol.Client(srv.endpoint)) for _ in range(4)]
            # A long job keeps the worker busy while the three others arrive, so they wait together.
            blocker = busy.generate("a person runs in a circle", seconds=limits["max_seconds"], max_rounds=5)
            while request(busy, JOB_TIMEOUT).type != "progress":
                pass
            jobs = [c.generate(prompt, job=f"job{k}", seconds=o.seconds, max_rounds=o.max_rounds)
                    for k, (c, (prompt, o)) in enumerate(zip(clients, BUILTIN_REQUESTS))]
            busy.cancel(blocker)
            results = [collect(c, job) for c, job in zip(clients, jobs)]
        for msgs, session in zip(results, single(builtin, BUILTIN_REQUESTS[:3])):
            rounds = [m for m in msgs if m.type == "round"]
            assert msgs[-1].type == "done" and len(rounds) == len(session.history)
            for m, r in zip(rounds, session.history):
                assert (m["codes"], m["assessment"], m["final"]) == (r.codes, r.assessment, r.final)
                assert np.allclose(m.arrays["joints"], r.joints, atol=1e-5)
        lines = [json.loads(line) for line in srv.log().splitlines() if line.startswith("{")]
        assert {line["job"]: line["batch"] for line in lines if line.get("job") in jobs} == dict.fromkeys(jobs, 3)
    finally:
        assert srv.stop() == 0
