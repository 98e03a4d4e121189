"""The model worker: one thread owns the model and advances jobs one round at a time, round-robin.

The server thread submits, refines, accepts and cancels jobs; the worker turns them into `LoopSession`
calls and hands every outgoing message to `emit(peer, frames)`. Emitting and changing a job's state
happen under one lock, so replies the server thread sends itself never overtake the worker's.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from backend import protocol
from backend.loop import Cancelled, LoopOptions, LoopSession, Progress
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


class JobError(ValueError):
    """A request about a job that cannot be honoured; becomes an `error` reply with `code`."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Worker:
    def __init__(self, model: Any, emit: Emit, fit_body: FitBody | None = None):
        self.model = model
        self._emit = emit
        self._fit_body = fit_body
        self._jobs: dict[tuple[bytes, str], Job] = {}
        self._ready: deque[Job] = deque()
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
            job.cancel.set()  # a running round raises Cancelled at its next decoding step
            if job.state != "running":
                if job.state == "queued":
                    self._ready.remove(job)
                self._close(job, protocol.encode("cancelled", job.id), "cancelled")

    def drop_peer(self, peer: bytes) -> int:
        """Cancel every job of a client that went silent; nobody is left to send replies to. Returns how many."""
        with self._cond:
            jobs = [j for j in self._jobs.values() if j.peer == peer]
            for job in jobs:
                job.cancel.set()
                job.client_gone = True
                if job.state != "running":
                    if job.state == "queued":
                        self._ready.remove(job)
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

    def _close(self, job: Job, frames: list | None, outcome: str) -> None:
        self._jobs.pop((job.peer, job.id), None)
        job.state = "finished"
        # The one structured line per job the operator reads (written before the client hears the end).
        log.info("job", extra={"job": {
            "job": job.id, "outcome": outcome, "prompt_chars": len(job.prompt), "mode": job.options.mode,
            "rounds": job.rounds, "first_round_s": None if job.first_round_s is None else round(job.first_round_s, 3),
            "compute_s": round(job.compute_s, 3), "total_s": round(time.monotonic() - job.submitted, 3)}})
        if frames is not None:
            self._emit(job.peer, frames)

    def _finish(self, job: Job, reason: str) -> None:
        self._close(job, protocol.encode("done", job.id, rounds=job.rounds, reason=reason), reason)

    # -- the worker thread ------------------------------------------------------------------------
    def _take(self) -> Job | None:
        with self._cond:
            while not self._ready and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            job = self._ready.popleft()
            job.state = "running"
            return job

    def _run(self) -> None:
        while (job := self._take()) is not None:
            try:
                self._advance(job)
            except Exception as exc:  # the traceback is for the server log, never for the client
                log.exception("job %s failed", job.id)
                with self._cond:
                    self._close(job, protocol.error("internal", f"the model failed on this job ({type(exc).__name__}); "
                                                               "see the server log", job.id), "internal_error")
            finally:
                job.session = None if job.state == "finished" else job.session  # free the KV cache early

    def _advance(self, job: Job) -> None:
        def progress(p: Progress) -> None:
            self._emit(job.peer, protocol.encode("progress", job.id, round=p.round, stage=p.stage, tokens=p.tokens))

        started = time.monotonic()
        if job.session is None:
            try:
                job.session = LoopSession(self.model, job.prompt, job.options, cancel=job.cancel, on_progress=progress)
            except (PromptError, ValueError) as exc:
                with self._cond:
                    self._close(job, protocol.error("bad_prompt", str(exc), job.id), "bad_prompt")
                return
        try:
            result = job.session.next_round(job.instruction)
        except Cancelled:
            result = None
        body = {}
        if result is not None and self._fit_body is not None and not result.error and len(result.joints):
            body = self._fit_body(result.joints)  # outside the lock: fitting takes seconds on a CPU
        job.compute_s += time.monotonic() - started
        with self._cond:
            if job.cancel.is_set():
                if job.state == "running" and job.client_gone:
                    self._close(job, None, "client_gone")
                elif job.state == "running":  # not already closed by stop
                    self._close(job, protocol.encode("cancelled", job.id), "cancelled")
                return
            if result is not None:
                job.rounds += 1
                job.last_round = result.index
                if job.first_round_s is None:
                    job.first_round_s = time.monotonic() - job.submitted
                self._emit(job.peer, protocol.encode(
                    "round", job.id, arrays={"joints": result.joints, **body}, round=result.index, codes=list(result.codes),
                    assessment=result.assessment, instruction=result.instruction, final=bool(result.final),
                    error=result.error, fps=float(self.model.fps), user_instruction=job.instruction,
                    warnings=list(job.session.warnings) if job.rounds == 1 else []))
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
