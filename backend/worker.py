"""The model worker: one thread owns the model and advances jobs one round at a time, round-robin.

The server thread submits, refines, accepts and cancels jobs; the worker turns them into `LoopSession`
calls and hands every outgoing message to `emit(peer, frames)`. Emitting and changing a job's state
happen under one lock, so replies the server thread sends itself never overtake the worker's.

With `max_batch` > 1, fresh auto-mode jobs that are waiting at the same time and sample alike run as one
batch (backend/batch_loop.py): the batch is one entry of the round-robin, and each of its turns gives every
row its next round. Messages per job are the same as when each job runs alone.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import numpy as np

from backend import protocol
from backend.batch_loop import PhaseEngine, RowEnd, TraceRow, TransformersBatch, drive
from backend.loop import Cancelled, LoopOptions, LoopSession, Progress, Round
from backend.prompts import PromptError

log = logging.getLogger("irg_motion.worker")

Emit = Callable[[bytes, list], None]
# joints (T, 22, 3) -> the round's extra arrays (smpl_global_orient, smpl_body_pose, smpl_betas, smpl_transl)
FitBody = Callable[["np.ndarray"], dict]
# Jobs wait in memory (a paused step job keeps its KV cache), so their number is bounded.
MAX_JOBS = 64
MAX_JOBS_PER_PEER = 8


@dataclass
class Job:
    peer: bytes
    id: str
    prompt: str
    options: LoopOptions
    cancel: threading.Event = field(default_factory=threading.Event)
    session: LoopSession | None = None
    state: str = "queued"  # queued -> running -> (paused <-> queued ->) finished
    instruction: str | None = None  # the animator's own instruction for the next round (step mode)
    client_gone: bool = False  # dropped because its client went silent: nobody to reply to
    last_round: int = -1
    rounds: int = 0
    submitted: float = field(default_factory=time.monotonic)
    first_round_s: float | None = None
    compute_s: float = 0.0
    batch: "Batch | None" = None  # the batch it runs in, if any (auto mode only)


@dataclass
class Batch:
    """Auto-mode jobs generated together; one entry of the worker's round-robin."""

    jobs: list[Job]
    events: Iterator[tuple[int, Round | RowEnd]] | None = None  # `drive` over the jobs' rows, from the first turn


class JobError(ValueError):
    """A request about a job that cannot be honoured; becomes an `error` reply with `code`."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Worker:
    """`max_batch`: the most auto-mode jobs generated as one batch (1: each job alone, the CPU default).
    `engine`: makes the engine of a batch (default: `TransformersBatch` over the model); when given, every
    auto-mode job runs on it, a batch of one when nothing waits beside it (`serve --engine vllm`)."""

    def __init__(self, model: Any, emit: Emit, fit_body: FitBody | None = None, max_batch: int = 1,
                 engine: Callable[[], PhaseEngine] | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.model = model
        self.max_batch = max_batch
        self.engine = engine
        self._emit = emit
        self._fit_body = fit_body
        self._jobs: dict[tuple[bytes, str], Job] = {}
        self._ready: deque[Job | Batch] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="irg-motion-worker", daemon=True)

    # -- called from the server thread -----------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job (each live client gets an error saying why) and wait for the thread."""
        with self._cond:
            self._stopping = True
            for job in list(self._jobs.values()):
                job.cancel.set()
                self._close(job, protocol.error("shutting_down", "the server is shutting down", job.id), "shutting_down")
            self._ready.clear()
            self._cond.notify_all()
        self._thread.join(timeout)

    def submit(self, peer: bytes, job_id: str, fields: dict) -> None:
        options = self._options(fields)
        prompt = fields["prompt"]
        if not prompt.strip():
            raise JobError("bad_prompt", "the prompt is empty")
        if len(prompt) > self.model.max_prompt_chars:
            raise JobError("bad_prompt", f"the prompt has {len(prompt)} characters; "
                                         f"the limit is {self.model.max_prompt_chars}")
        with self._cond:
            if (peer, job_id) in self._jobs:
                raise JobError("duplicate_job", f"job {job_id!r} is already running; use a new job id")
            if len(self._jobs) >= MAX_JOBS:
                raise JobError("busy", f"the server already has {MAX_JOBS} jobs; try again later")
            if sum(1 for p, _ in self._jobs if p == peer) >= MAX_JOBS_PER_PEER:
                raise JobError("busy", f"this client already has {MAX_JOBS_PER_PEER} jobs running")
            job = Job(peer, job_id, prompt, options)
            self._jobs[(peer, job_id)] = job
            self._ready.append(job)
            self._cond.notify()

    def refine(self, peer: bytes, job_id: str, round_index: int, instruction: str | None) -> None:
        if instruction is not None and len(instruction) > self.model.max_prompt_chars:
            raise JobError("bad_field", f"the instruction has {len(instruction)} characters; "
                                        f"the limit is {self.model.max_prompt_chars}")
        with self._cond:
            job = self._paused(peer, job_id)
            if round_index != job.last_round:
                raise JobError("stale_round", f"job {job_id!r} is waiting on round {job.last_round}, "
                                              f"not round {round_index}")
            job.instruction = instruction.strip() if instruction and instruction.strip() else None
            job.state = "queued"
            self._ready.append(job)
            self._cond.notify()

    def accept(self, peer: bytes, job_id: str) -> None:
        with self._cond:
            job = self._paused(peer, job_id)
            self._finish(job, "accepted")

    def cancel(self, peer: bytes, job_id: str) -> None:
        with self._cond:
            job = self._jobs.get((peer, job_id))
            if job is None:
                raise JobError("unknown_job", f"no live job {job_id!r}")
            job.cancel.set()  # a running round raises Cancelled (a batch drops the row) at its next decoding step
            if job.state != "running":
                self._unqueue(job)
                self._close(job, protocol.encode("cancelled", job.id), "cancelled")

    def drop_peer(self, peer: bytes) -> int:
        """Cancel every job of a client that went silent; nobody is left to send replies to. Returns how many."""
        with self._cond:
            jobs = [j for j in self._jobs.values() if j.peer == peer]
            for job in jobs:
                job.cancel.set()
                job.client_gone = True
                if job.state != "running":
                    self._unqueue(job)
                    self._close(job, None, "client_gone")
                # A running job is closed by the worker when its round raises Cancelled.
            return len(jobs)

    def live_jobs(self) -> int:
        with self._cond:
            return len(self._jobs)

    # -- helpers (hold the lock) ------------------------------------------------------------------
    def _options(self, fields: dict) -> LoopOptions:
        m = self.model
        seconds = float(fields.get("seconds", 4.0))
        if not m.min_seconds <= seconds <= m.max_seconds:
            raise JobError("bad_field", f"seconds must be between {m.min_seconds:g} and {m.max_seconds:g}, got {seconds:g}")
        max_rounds = fields.get("max_rounds", 3)
        if not 1 <= max_rounds <= m.max_rounds_limit:
            raise JobError("bad_field", f"max_rounds must be between 1 and {m.max_rounds_limit}, got {max_rounds}")
        mode = fields.get("mode", "auto")
        if mode not in protocol.MODES:
            raise JobError("bad_field", f"mode must be one of {', '.join(protocol.MODES)}, got {mode!r}")
        temperature = float(fields.get("temperature", 1.0))
        top_p = float(fields.get("top_p", 0.9))
        if not 0.0 < temperature <= 10.0 or not 0.0 < top_p <= 1.0:
            raise JobError("bad_field", "temperature must be in (0, 10] and top_p in (0, 1]")
        seed = fields.get("seed")
        if seed is not None and not 0 <= seed < 2**32:
            raise JobError("bad_field", f"seed must be null or an integer from 0 to 2**32 - 1, got {seed}")
        return LoopOptions(seconds=seconds, max_rounds=max_rounds, mode=mode, seed=seed,
                           do_sample=bool(fields.get("do_sample", False)), temperature=temperature, top_p=top_p)

    def _paused(self, peer: bytes, job_id: str) -> Job:
        job = self._jobs.get((peer, job_id))
        if job is None:
            raise JobError("unknown_job", f"no live job {job_id!r}")
        if job.options.mode != "step":
            raise JobError("not_step_mode", f"job {job_id!r} runs in auto mode; only step-mode jobs wait for refine/accept")
        if job.state != "paused":
            raise JobError("not_paused", f"job {job_id!r} is still computing round {job.last_round + 1}")
        return job

    def _unqueue(self, job: Job) -> None:
        """Take a queued job out of the line (a job of a waiting batch stays; its row leaves at the next turn)."""
        if job.state == "queued" and job.batch is None:
            self._ready.remove(job)

    def _close(self, job: Job, frames: list | None, outcome: str) -> None:
        self._jobs.pop((job.peer, job.id), None)
        job.state = "finished"
        # The one structured line per job the operator reads (written before the client hears the end).
        log.info("job", extra={"job": {
            "job": job.id, "outcome": outcome, "prompt_chars": len(job.prompt), "mode": job.options.mode,
            "rounds": job.rounds, "first_round_s": None if job.first_round_s is None else round(job.first_round_s, 3),
            "compute_s": round(job.compute_s, 3), "total_s": round(time.monotonic() - job.submitted, 3),
            "batch": 1 if job.batch is None else len(job.batch.jobs)}})
        if frames is not None:
            self._emit(job.peer, frames)

    def _finish(self, job: Job, reason: str) -> None:
        self._close(job, protocol.encode("done", job.id, rounds=job.rounds, reason=reason), reason)

    # -- the worker thread ------------------------------------------------------------------------
    def _batch_key(self, job: Job) -> tuple | None:
        """Jobs with equal keys may share a batch: fresh auto-mode jobs that sample alike. A seeded sampling job
        runs alone: its seed promises the single-prompt stream."""
        o = job.options
        if job.session is not None or o.mode != "auto" or (o.do_sample and o.seed is not None):
            return None
        return (True, o.temperature, o.top_p) if o.do_sample else (False,)

    def _take(self) -> Job | Batch | None:
        with self._cond:
            while not self._ready and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            unit = self._ready.popleft()
            if isinstance(unit, Job) and unit.session is None and unit.options.mode == "auto":
                key = self._batch_key(unit)
                mates = [j for j in self._ready if isinstance(j, Job) and key is not None and self._batch_key(j) == key]
                mates = mates[: self.max_batch - 1]
                if mates or self.engine is not None:
                    for mate in mates:
                        self._ready.remove(mate)
                    unit = Batch([unit, *mates])
                    for job in unit.jobs:
                        job.batch = unit
            for job in unit.jobs if isinstance(unit, Batch) else [unit]:
                if job.state != "finished":  # a job of a waiting batch may have been cancelled meanwhile
                    job.state = "running"
            return unit

    def _run(self) -> None:
        while (unit := self._take()) is not None:
            jobs = unit.jobs if isinstance(unit, Batch) else [unit]
            try:
                if isinstance(unit, Batch):
                    self._advance_batch(unit)
                else:
                    self._advance(unit)
            except Exception as exc:  # the traceback is for the server log, never for the client
                log.exception("job(s) %s failed", ", ".join(j.id for j in jobs))
                with self._cond:
                    for job in jobs:
                        if job.state != "finished":
                            self._close(job, protocol.error(
                                "internal", f"the model failed on this job ({type(exc).__name__}); see the server log",
                                job.id), "internal_error")
            finally:
                for job in jobs:
                    job.session = None if job.state == "finished" else job.session  # free the KV cache early

    def _progress(self, job: Job) -> Callable[[Progress], None]:
        def progress(p: Progress) -> None:
            self._emit(job.peer, protocol.encode("progress", job.id, round=p.round, stage=p.stage, tokens=p.tokens))

        return progress

    def _advance(self, job: Job) -> None:
        started = time.monotonic()
        if job.session is None:
            try:
                job.session = LoopSession(self.model, job.prompt, job.options, cancel=job.cancel,
                                          on_progress=self._progress(job))
            except (PromptError, ValueError) as exc:
                with self._cond:
                    self._close(job, protocol.error("bad_prompt", str(exc), job.id), "bad_prompt")
                return
        try:
            result = job.session.next_round(job.instruction)
        except Cancelled:
            result = None
        body = self._body(result)
        job.compute_s += time.monotonic() - started
        with self._cond:
            if self._close_if_cancelled(job):
                return
            if result is not None:
                self._send_round(job, result, body)
            if job.options.mode == "step":
                # The animator has the last word: even a round the model judged final can be rejected with
                # an instruction, so pause unless no further round is possible.
                if result is None or result.error or job.rounds >= job.options.max_rounds:
                    self._finish(job, "finished")
                else:
                    job.state = "paused"
                    job.instruction = None
            elif result is None or job.session.finished:
                self._finish(job, "finished")
            else:
                job.state = "queued"  # back of the line: other clients' jobs get their rounds in between
                self._ready.append(job)

    def _advance_batch(self, batch: Batch) -> None:
        """One turn of a batch: every live row's next round (or its end); then back of the line if rows remain."""
        started = time.monotonic()
        if batch.events is None:
            batch.events = drive(self._rows(batch), self.engine() if self.engine else TransformersBatch(self.model))
        owed = {i for i, job in enumerate(batch.jobs) if job.session is not None and job.state == "running"}
        if not owed:  # every job ended while the batch waited in line
            return
        for i, event in batch.events:
            job = batch.jobs[i]
            if i in owed:  # its share of this turn: the batch computed for it until now
                owed.discard(i)
                job.compute_s += time.monotonic() - started
            try:
                self._batch_event(job, event)
            except Exception as exc:  # e.g. fitting the body of this job's round: only this job fails
                log.exception("job %s failed", job.id)
                job.cancel.set()  # its row leaves the batch at the next decoding step
                with self._cond:
                    if job.state != "finished":
                        self._close(job, protocol.error("internal", f"the model failed on this job "
                                                                    f"({type(exc).__name__}); see the server log",
                                                        job.id), "internal_error")
            if not owed:
                break
        with self._cond:
            live = [job for job in batch.jobs if job.state != "finished"]
            for job in live:
                job.state = "queued"
            if live:
                self._ready.append(batch)

    def _rows(self, batch: Batch) -> dict[int, TraceRow]:
        """The batch's jobs as trace rows; a job whose prompt or options the loop cannot use ends here."""
        rows = {}
        for i, job in enumerate(batch.jobs):
            try:
                job.session = rows[i] = TraceRow(self.model, job.prompt, job.options, cancel=job.cancel,
                                                 on_progress=self._progress(job))
            except (PromptError, ValueError) as exc:
                with self._cond:
                    if job.state != "finished":
                        self._close(job, protocol.error("bad_prompt", str(exc), job.id), "bad_prompt")
        return rows

    def _batch_event(self, job: Job, event: Round | RowEnd) -> None:
        if isinstance(event, RowEnd):
            with self._cond:
                if job.state == "finished" or self._close_if_cancelled(job):  # closed already, or now
                    return
                if event.reason == "failed":
                    self._close(job, protocol.error("internal", f"{event.message}; see the server log", job.id),
                                "internal_error")
                else:
                    self._finish(job, "finished")
            return
        body = self._body(event)
        with self._cond:
            if job.state == "finished" or self._close_if_cancelled(job):
                return
            self._send_round(job, event, body)
            if event.final:
                self._finish(job, "finished")

    def _body(self, result: Round | None) -> dict:
        """The round's fitted SMPL arrays (outside the lock: fitting takes seconds on a CPU)."""
        if result is None or self._fit_body is None or result.error or not len(result.joints):
            return {}
        return self._fit_body(result.joints)

    def _close_if_cancelled(self, job: Job) -> bool:
        """(Lock held.) A cancelled running job ends here; True when it was cancelled."""
        if not job.cancel.is_set():
            return False
        if job.state == "running" and job.client_gone:
            self._close(job, None, "client_gone")
        elif job.state == "running":  # not already closed by stop
            self._close(job, protocol.encode("cancelled", job.id), "cancelled")
        return True

    def _send_round(self, job: Job, result: Round, body: dict) -> None:
        """(Lock held.)"""
        job.rounds += 1
        job.last_round = result.index
        if job.first_round_s is None:
            job.first_round_s = time.monotonic() - job.submitted
        self._emit(job.peer, protocol.encode(
            "round", job.id, arrays={"joints": result.joints, **body}, round=result.index, codes=list(result.codes),
            assessment=result.assessment, instruction=result.instruction, final=bool(result.final),
            error=result.error, fps=float(self.model.fps), user_instruction=job.instruction,
            warnings=list(job.session.warnings) if job.rounds == 1 else []))
