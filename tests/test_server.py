"""The service end to end: a real `irg-motion serve` process with the built-in model, real sockets on loopback."""
import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import msgpack
import pytest
import zmq

from backend import protocol
from backend.cli.main import main
from backend.protocol import Client
from backend.security import client_keys

pytestmark = pytest.mark.slow

START_TIMEOUT = 90.0  # loading the model on two shared cores
JOB_TIMEOUT = 60.0
TERMINAL = {"done", "cancelled", "error"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`irg-motion serve` in a child process; always stopped by the test that started it."""

    def __init__(self, log_path, *extra: str, endpoint: str | None = None):
        self.endpoint = endpoint or f"tcp://127.0.0.1:{free_port()}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backend.cli.main", "serve", "--bind", self.endpoint, "--device", "cpu", *extra],
            stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, **client_args) -> dict:
        deadline = time.monotonic() + START_TIMEOUT
        with Client(self.endpoint, **client_args) as client:
            client.hello()
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"server exited early:\n{self.log()}"
                msg = client.recv(timeout=0.5)
                if msg is not None and msg.type == "welcome":
                    return msg.fields
                if msg is None:
                    client.hello()
        raise AssertionError(f"server not ready after {START_TIMEOUT} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"server ignored {sig!r} for {timeout} s")
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("server") / "server.log")
    try:
        srv.welcome = srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server):
    with Client(server.endpoint) as c:
        yield c


def collect(client: Client, job: str, timeout: float = JOB_TIMEOUT) -> list[protocol.Message]:
    """Every message for `job` up to and including its done/cancelled/error (fails on messages for other jobs)."""
    return collect_until(client, job, TERMINAL, timeout, errors_ok=True)


def request(client: Client, timeout: float = 10.0) -> protocol.Message:
    msg = client.recv(timeout=timeout)
    assert msg is not None, "no reply from the server"
    return msg


def short_job(welcome: dict) -> dict:
    return dict(seconds=welcome["limits"]["min_seconds"], max_rounds=1)


# -- handshake -----------------------------------------------------------------------------------------

def test_hello_gets_the_model_its_limits_and_capabilities(server, client):
    client.hello()
    welcome = request(client)
    assert welcome.type == "welcome"
    assert welcome["joints"] == "smpl22" and welcome["fps"] == 20.0 and welcome["device"] == "cpu"
    assert welcome["model_id"]
    limits = welcome["limits"]
    assert 0 < limits["min_seconds"] <= limits["max_seconds"] and limits["max_rounds"] >= 3
    assert {"auto", "step", "cancel"} <= set(welcome["capabilities"])


def test_ping_command_prints_model_device_and_latency(server, capsys):
    assert main(["ping", server.endpoint, "--count", "3"]) == 0
    out = capsys.readouterr().out
    assert server.welcome["model_id"] in out and "cpu" in out and re.search(r"latency \d+\.\d+ ms", out)


def test_ping_command_says_when_nobody_answers(capsys):
    assert main(["ping", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.5", "--count", "1"]) == 2
    assert "no answer" in capsys.readouterr().err


# -- jobs ----------------------------------------------------------------------------------------------

def test_rounds_stream_while_the_loop_is_still_running(server, client):
    # Greedy decoding may satisfy the model in one round; sampling with a few seeds gives a multi-round job.
    for seed in range(8):
        job = client.generate("a person walks forward", seconds=4.0, max_rounds=3, do_sample=True, seed=seed)
        msgs = collect(client, job)
        kinds = [m.type for m in msgs]
        assert kinds[-1] == "done", kinds
        rounds = [m for m in msgs if m.type == "round"]
        assert [r["round"] for r in rounds] == list(range(len(rounds))) and msgs[-1]["rounds"] == len(rounds)
        for r in rounds:
            assert r.arrays["joints"].ndim == 3 and r.arrays["joints"].shape[1:] == (22, 3)
            assert r["error"] or (r.arrays["joints"].shape[0] > 0 and r["codes"])
        assert rounds[-1]["final"] and not any(r["final"] for r in rounds[:-1])
        if len(rounds) > 1:
            break
    else:
        pytest.fail("the built-in model ended every job after one round: streaming cannot be observed")
    # Streaming: work on the second round (its progress) reaches the client after the first round did.
    first = kinds.index("round")
    assert any(m.type == "progress" and m["round"] == 1 for m in msgs[first + 1:]), kinds
    # The operator's log has one structured line for this job.
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    job_lines = [line for line in lines if line.get("job") == job]
    assert len(job_lines) == 1
    assert job_lines[0]["prompt_chars"] == len("a person walks forward") and job_lines[0]["rounds"] == len(rounds)
    assert job_lines[0]["outcome"] == "finished" and job_lines[0]["compute_s"] > 0


def test_eight_clients_three_jobs_each_all_complete_and_nothing_strays(server):
    opts = short_job(server.welcome)
    prompts = ["a person walks forward", "a person jumps", "a person waves"]
    results: dict[int, dict[str, list]] = {}
    failures: list[str] = []

    def run(i: int) -> None:
        try:
            with Client(server.endpoint) as c:
                jobs = {c.generate(p, job=f"c{i}-j{k}", **opts): [] for k, p in enumerate(prompts)}
                pending, deadline = set(jobs), time.monotonic() + 4 * JOB_TIMEOUT
                while pending and time.monotonic() < deadline:
                    msg = c.recv(timeout=0.5)
                    if msg is None:
                        continue
                    if msg.job not in jobs:
                        failures.append(f"client {i} got a message for job {msg.job!r}")
                        continue
                    jobs[msg.job].append(msg)
                    if msg.type in TERMINAL:
                        pending.discard(msg.job)
                results[i] = jobs
        except Exception as exc:  # reported below; a thread cannot fail the test itself
            failures.append(f"client {i}: {exc!r}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5 * JOB_TIMEOUT)
    assert not failures, failures
    assert sorted(results) == list(range(8))
    for i, jobs in results.items():
        for job, msgs in jobs.items():
            kinds = [m.type for m in msgs]
            assert kinds.count("done") == 1 and kinds[-1] == "done", (job, kinds)
            assert kinds.count("round") == msgs[-1]["rounds"] >= 1, (job, kinds)


def test_cancel_mid_job_stops_it_within_one_round(server, client):
    limits = server.welcome["limits"]
    job = client.generate("a person runs in a circle", seconds=limits["max_seconds"], max_rounds=limits["max_rounds"])
    seen = []
    while not any(m.type == "progress" for m in seen):  # the model is working on it now
        seen.append(request(client, JOB_TIMEOUT))
        assert seen[-1].type in {"progress", "round"}, seen[-1]
    client.cancel(job)
    after = collect(client, job)
    assert after[-1].type == "cancelled", [m.type for m in after]
    assert sum(m.type == "round" for m in after) <= 1
    assert not any(m.type == "done" for m in seen + after)
    # The job is gone: cancelling again is an error, and the server still takes work.
    client.cancel(job)
    err = request(client)
    assert (err.type, err["code"], err.job) == ("error", "unknown_job", job)
    job2 = client.generate("a person jumps", **short_job(server.welcome))
    assert collect(client, job2)[-1].type == "done"


def step_round(client, job) -> protocol.Message:
    for msg in collect_until(client, job, {"round"}):
        if msg.type == "round":
            return msg


def collect_until(client, job, kinds, timeout=JOB_TIMEOUT, errors_ok=False):
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = client.recv(timeout=0.5)
        if msg is None:
            continue
        assert msg.job == job, f"message for job {msg.job!r} arrived while waiting on {job!r}: {msg}"
        assert errors_ok or msg.type != "error", msg
        out.append(msg)
        if msg.type in kinds:
            return out
    raise AssertionError(f"no {kinds} for {job} within {timeout} s")


def test_step_mode_accept_reject_and_reject_with_instruction(server, client):
    seconds = server.welcome["limits"]["min_seconds"]
    # Accept: the job waits after its first round until the animator decides.
    job = client.generate("a person jumps", seconds=seconds, max_rounds=3, mode="step")
    first = step_round(client, job)
    assert first["round"] == 0 and first["user_instruction"] is None and not first["error"], first.fields
    assert client.recv(timeout=1.0) is None  # paused: nothing more comes
    client.accept("not-a-job")
    assert request(client)["code"] == "unknown_job"
    client.refine(job, round=5)
    assert request(client)["code"] == "stale_round"
    client.refine(job, round=0, instruction="higher " * 1000)
    assert request(client)["code"] == "bad_field"
    client.accept(job)
    done = request(client)
    assert (done.type, done.job, done["reason"], done["rounds"]) == ("done", job, "accepted", 1)
    client.refine(job, round=0)
    assert request(client)["code"] == "unknown_job"

    # Reject with the animator's own words: the next round follows them, even after a round judged final.
    job = client.generate("a person jumps", seconds=seconds, max_rounds=3, mode="step")
    step_round(client, job)
    client.refine(job, round=0, instruction="jump higher")
    second = step_round(client, job)
    assert (second["round"], second["user_instruction"]) == (1, "jump higher")
    assert second["error"] or second.arrays["joints"].shape[0] > 0
    if not second["error"]:  # a garbled round ends the job by itself
        client.cancel(job)
    assert collect(client, job)[-1].type in ("cancelled", "done")

    # Reject without words: the model's own instruction drives the next round, unless it was satisfied.
    job = client.generate("a person walks forward", seconds=seconds, max_rounds=3, mode="step")
    first = step_round(client, job)
    client.refine(job, round=0)
    msgs = collect_until(client, job, {"round", "done"})
    if first["final"]:
        assert (msgs[-1].type, msgs[-1]["reason"], msgs[-1]["rounds"]) == ("done", "finished", 1)
    else:
        assert (msgs[-1].type, msgs[-1]["round"], msgs[-1]["user_instruction"]) == ("round", 1, None)
        if not msgs[-1]["error"]:
            client.cancel(job)
        assert collect(client, job)[-1].type in ("cancelled", "done")


def test_auto_jobs_refuse_step_commands(server, client):
    job = client.generate("a person walks", **short_job(server.welcome))
    client.accept(job)
    msgs = collect(client, job)
    assert (msgs[-1].type, msgs[-1]["code"]) == ("error", "not_step_mode"), [m.type for m in msgs]
    assert collect(client, job)[-1].type == "done"  # the job itself is unharmed


@pytest.mark.parametrize(
    "fields, code, words",
    [
        (dict(prompt="a person " + "walks " * 2000), "bad_prompt", "limit"),
        (dict(prompt="   "), "bad_prompt", "empty"),
        (dict(prompt="a person walks", seconds=10_000.0), "bad_field", "seconds"),
        (dict(prompt="a person walks", max_rounds=1000), "bad_field", "max_rounds"),
        (dict(prompt="a person walks", mode="turbo"), "bad_field", "mode"),
        (dict(prompt="a person walks", top_p=0.0), "bad_field", "top_p"),
        (dict(prompt="a person walks", seed=-1), "bad_field", "seed"),
    ],
)
def test_bad_generate_requests_get_readable_errors(server, client, fields, code, words):
    client.send("generate", "bad-job", **fields)
    err = request(client)
    assert (err.type, err.job, err["code"]) == ("error", "bad-job", code)
    assert words in err["message"] and "Traceback" not in err["message"]


def test_duplicate_job_ids_are_refused(server, client):
    opts = short_job(server.welcome)
    client.generate("a person walks", job="same", **opts)
    client.generate("a person jumps", job="same", **opts)
    msgs = collect(client, "same")
    errors = [m for m in msgs if m.type == "error"]
    if msgs[-1].type == "error":  # the duplicate's error came before the first job finished
        msgs += collect(client, "same")
        errors = [m for m in msgs if m.type == "error"]
    assert [e["code"] for e in errors] == ["duplicate_job"] and msgs[-1].type == "done"


def test_one_client_cannot_queue_more_than_its_share_of_jobs(server, client):
    jobs = [client.generate("a person walks", job=f"many-{k}", **short_job(server.welcome)) for k in range(9)]
    for job in jobs[:8]:
        client.cancel(job)
    ends: dict[str, str] = {}
    deadline = time.monotonic() + JOB_TIMEOUT
    while len(ends) < 9 and time.monotonic() < deadline:
        msg = client.recv(timeout=0.5)
        if msg is not None and msg.type in TERMINAL:
            ends[msg.job] = msg.type if msg.type != "error" else msg["code"]
    assert ends["many-8"] == "busy"
    assert all(ends[job] in ("cancelled", "done") for job in jobs[:8]), ends


# -- malformed traffic -----------------------------------------------------------------------------------

@pytest.fixture
def raw(server):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoint)
    yield sock
    sock.close()
    ctx.term()


def raw_reply(sock) -> protocol.Message:
    assert sock.poll(10_000), "the server did not answer"
    return protocol.decode(sock.recv_multipart(), replies=True)


def packed(**fields):
    return msgpack.packb({"v": protocol.PROTOCOL_VERSION, **fields})


@pytest.mark.parametrize(
    "frames, code",
    [
        ([b"\x93\x01\x02"], "bad_message"),  # truncated msgpack
        ([b"\xc1"], "bad_message"),
        ([msgpack.packb({"v": 99, "type": "hello"})], "bad_version"),
        ([packed(type="hello", pad="x" * (2 * protocol.MAX_HEADER_BYTES))], "header_too_large"),
        ([packed(type="generate", job="j", prompt="x", arrays=[{"name": "joints", "shape": [2, 22, 3], "dtype": "<f4"}]),
          b"\0" * 5], "bad_array"),
        ([packed(type="hello", arrays=[{"name": "joints", "shape": [10**9, 22, 3], "dtype": "<f4"}]), b""], "bad_array"),
        ([packed(type="hello")] + [b"x"] * 50, "too_many_frames"),
        ([packed(type="self_destruct", job="j")], "unknown_type"),
    ],
)
def test_malformed_messages_get_errors_and_the_server_keeps_serving(server, raw, frames, code):
    raw.send_multipart(frames)
    err = raw_reply(raw)
    assert err.type == "error" and err["code"] == code and err["message"]
    assert "Traceback" not in err["message"]
    raw.send_multipart(protocol.encode("ping", t=1.0))
    assert raw_reply(raw).type == "pong"


def test_a_frame_over_the_socket_limit_drops_only_that_connection(server, raw, client):
    raw.send_multipart([b"\0" * (protocol.MAX_REQUEST_FRAME_BYTES + 1)])
    client.ping()
    assert request(client).type == "pong"
    # The offender's DEALER reconnects on its own and is served again.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        raw.send_multipart(protocol.encode("ping", t=2.0))
        if raw.poll(500):
            assert protocol.decode(raw.recv_multipart(), replies=True).type == "pong"
            return
    raise AssertionError("the server never answered the reconnected client")


def malformed_messages(rng: random.Random, count: int):
    """`count` (frames, expected error codes) pairs: every way a request can be broken that fits in a frame."""
    shape_header = lambda shape, n_frames=1, **f: [packed(type="ping", arrays=[
        {"name": "joints", "shape": shape, "dtype": "<f4"}] * n_frames, **f)]
    makers = [
        # random bytes: whatever they decode to, they are not a valid request
        lambda: ([rng.randbytes(rng.randint(0, 300))], None),
        lambda: ([msgpack.packb({"v": rng.choice([0, 2, 99, -1, "1", None, 1.5, True, [1]]), "type": "ping"})],
                 {"bad_version"}),
        lambda: ([msgpack.packb({"type": "ping"})], {"bad_version"}),
        # huge declared shapes: refused on the numbers, nothing allocated
        lambda: (shape_header([rng.choice([10**9, 2**40, 2**63]), 22, 3]) + [b""], {"bad_array"}),
        lambda: (shape_header([10**6] * 4) + [b"\0" * 64], {"bad_array"}),
        # wrong types
        lambda: ([packed(type="generate", job="j", prompt=rng.choice([5, None, 1.5, ["a"], {"a": 1}, True]))],
                 {"bad_field"}),
        lambda: ([packed(type="generate", job="j", prompt="a person walks",
                         **rng.choice([{"seconds": "4"}, {"max_rounds": 2.5}, {"mode": 3}, {"seed": "x"},
                                       {"do_sample": 1}, {"temperature": None}, {"top_p": [1]}]))], {"bad_field"}),
        lambda: ([packed(type="refine", job="j", round=rng.choice(["0", 1.5, None, True]))], {"bad_field"}),
        lambda: ([packed(type="cancel", job=rng.choice([5, "", "x" * 65, None]))], {"bad_field"}),
        lambda: ([packed(type=rng.choice([5, None, ["ping"], {"a": 1}, "x" * 1000, "welcome"]), job="j")],
                 {"unknown_type"}),
        # well formed, but out of range or about jobs that do not exist
        lambda: ([packed(type="generate", job="j", prompt="a person walks",
                         **rng.choice([{"seconds": 1e9}, {"max_rounds": 0}, {"mode": "turbo"}, {"top_p": 2.0}]))],
                 {"bad_field"}),
        lambda: ([packed(type=rng.choice(["refine", "accept", "cancel"]), job=f"ghost-{rng.randint(0, 99)}",
                         round=0)], {"unknown_job"}),
        # truncated multipart: arrays declared, frames missing; wrong frame counts; wrong byte lengths
        lambda: (shape_header([2, 22, 3], n_frames=rng.randint(2, 4)) + [b"\0" * 528], {"bad_array"}),
        lambda: ([packed(type="ping")] + [b"x"] * rng.randint(1, 4), {"bad_array"}),
        lambda: ([packed(type="ping")] + [b"x"] * rng.randint(protocol.MAX_FRAMES, 20), {"too_many_frames"}),
        lambda: (shape_header([2, 22, 3]) + [b"\0" * rng.choice([0, 7, 527, 529])], {"bad_array"}),
        # big frames under the socket's limit: a leak of these would show in the server's memory at once
        lambda: ([packed(type="ping", pad="x" * rng.randint(protocol.MAX_HEADER_BYTES, 3 * protocol.MAX_HEADER_BYTES))],
                 {"header_too_large"}),
        lambda: ([packed(type="ping", pad="x" * 60_000, arrays=[{"name": "joints", "shape": [10**9, 22, 3],
                                                                 "dtype": "<f4"}]), b"\0" * 100_000], {"bad_array"}),
    ]
    for _ in range(count):
        yield rng.choice(makers)()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc/PID/status (VmRSS is in kB)."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def flood(sock, messages, window: int = 64) -> dict[str, int]:
    """Send every message from a DEALER with at most `window` unanswered; each must get its error, in order."""
    expected: list = []
    codes: dict[str, int] = {}
    sent = answered = 0
    messages = iter(messages)
    exhausted = False
    while not exhausted or answered < sent:
        while not exhausted and sent - answered < window:
            try:
                frames, allowed = next(messages)
            except StopIteration:
                exhausted = True
                break
            sock.send_multipart(frames)
            expected.append(allowed)
            sent += 1
        if answered < sent:
            assert sock.poll(10_000), f"no answer to malformed message {answered} of {sent} within 10 s"
            reply = protocol.decode(sock.recv_multipart(), replies=True)
            allowed = expected[answered]
            assert reply.type == "error", f"message {answered}: {reply}"
            assert allowed is None or reply["code"] in allowed, (answered, allowed, reply.fields)
            assert "Traceback" not in reply["message"] and len(reply["message"]) < 1000
            codes[reply["code"]] = codes.get(reply["code"], 0) + 1
            answered += 1
    return codes


def test_ten_thousand_malformed_messages_are_each_refused_and_memory_stays_flat(server, raw, client):
    # Every malformed message gets exactly one error (none is dropped: they all fit in a frame and the DEALER
    # never has more than 64 unanswered), and the server stays up, answering, with flat memory.
    rng = random.Random(1234)
    pid = server.proc.pid
    flood(raw, malformed_messages(rng, 1000))  # warm up: allocator pools, log buffers, socket queues at their peak
    job = client.generate("a person walks forward", **short_job(server.welcome))
    assert collect(client, job)[-1].type == "done"
    before = rss_mb(pid)
    started = time.monotonic()
    codes = flood(raw, malformed_messages(rng, 10_000))
    elapsed = time.monotonic() - started
    after = rss_mb(pid)
    assert sum(codes.values()) == 10_000
    assert {"bad_message", "bad_version", "bad_array", "bad_field", "unknown_type", "unknown_job", "too_many_frames",
            "header_too_large"} <= set(codes), codes
    assert "internal" not in codes, codes
    assert server.proc.poll() is None
    # Flat memory. The bound is 20 MB over a ~430 MB process: a leak of 2 KB per message (a frame, a log
    # record, a dict entry with its strings) would exceed it, and so would keeping one in five of the ~1,100
    # messages of 64 to 200 KiB; the drift measured without a leak is under 1 MB (allocator and log buffers).
    assert after - before < 20, f"server RSS grew from {before:.1f} MB to {after:.1f} MB over 10,000 bad messages"
    # Still serving, the flooding DEALER included.
    job = client.generate("a person jumps", **short_job(server.welcome))
    msgs = collect(client, job)
    assert msgs[-1].type == "done" and any(m.type == "round" for m in msgs)
    raw.send_multipart(protocol.encode("ping", t=3.0))
    assert raw_reply(raw).type == "pong"
    print(f"10,000 malformed messages in {elapsed:.1f} s ({10_000 / elapsed:.0f}/s); "
          f"server RSS {before:.1f} -> {after:.1f} MB; codes {codes}")


# -- lifecycle and security (own server processes) -----------------------------------------------------

def test_killed_server_is_noticed_within_three_seconds_and_sigterm_is_graceful(tmp_path):
    srv = ServerProcess(tmp_path / "server.log")
    try:
        welcome = srv.wait_ready()
        with Client(srv.endpoint) as c:
            job = c.generate("a person walks forward", seconds=welcome["limits"]["max_seconds"], max_rounds=3)
            while request(c, JOB_TIMEOUT).type != "progress":
                pass
            # SIGTERM mid-job: the client hears why its job ended, and the process exits cleanly.
            assert srv.stop(signal.SIGTERM) == 0
            msgs = collect(c, job, timeout=10)
            assert msgs[-1].type == "error" and msgs[-1]["code"] == "shutting_down"
    finally:
        srv.stop()

    srv = ServerProcess(tmp_path / "server2.log")
    try:
        srv.wait_ready()
        with Client(srv.endpoint) as c:
            c.ping()
            assert request(c).type == "pong" and c.alive
            srv.proc.kill()
            killed = time.monotonic()
            while c.alive and time.monotonic() - killed < 10:
                c.drain()
                time.sleep(0.05)
            assert not c.alive
            assert time.monotonic() - killed < 3.0
    finally:
        srv.stop()


def wait_until_dead(client: Client, limit: float = 10.0) -> tuple[float, list[protocol.Message]]:
    """Pump like the add-on's timer until `alive` turns False; returns (seconds it took, messages still received)."""
    started, got = time.monotonic(), []
    while client.alive and time.monotonic() - started < limit:
        got += client.drain()
        time.sleep(0.05)
    return time.monotonic() - started, got


def test_server_killed_mid_job_is_noticed_rounds_are_kept_and_the_same_client_reconnects(tmp_path):
    srv = ServerProcess(tmp_path / "server.log")
    restarted = None
    try:
        limits = srv.wait_ready()["limits"]
        with Client(srv.endpoint) as c:
            # A step job: round 0 arrives, the animator rejects it, and the server is killed computing round 1.
            job = c.generate("a person jumps", seconds=limits["max_seconds"], max_rounds=3, mode="step")
            received = collect_until(c, job, {"round"})
            first = received[-1]
            assert first["round"] == 0 and first.arrays["joints"].shape[0] > 0, first.fields
            joints = first.arrays["joints"].copy()
            c.refine(job, round=0, instruction="jump higher")
            received += collect_until(c, job, {"progress"})
            srv.proc.kill()
            srv.proc.wait(10)
            took, after = wait_until_dead(c)
            assert not c.alive and took < 3.0, f"the client noticed the kill after {took:.2f} s"
            assert all(m.job == job and m.type in ("progress", "round") for m in after), after
            # What arrived before the kill is intact: the round's joints are views on frames the client still owns.
            rounds = [m for m in received + after if m.type == "round"]
            assert rounds[0] is first and rounds[0]["round"] == 0
            assert (first.arrays["joints"] == joints).all()

            # A new server on the same address: the same client object is served again, without reconnecting by hand.
            restarted = ServerProcess(tmp_path / "restarted.log", endpoint=srv.endpoint)
            restarted.wait_ready()
            deadline = time.monotonic() + 5.0
            c.hello()
            while (msg := c.recv(timeout=0.5)) is None or msg.type != "welcome":
                assert time.monotonic() < deadline, "the old client was not served by the restarted server"
            assert c.alive
            job2 = c.generate("a person waves", seconds=limits["min_seconds"], max_rounds=1)
            msgs = [m for m in collect_until(c, job2, {"done"}) if m.type == "round"]
            assert len(msgs) == 1 and msgs[0].arrays["joints"].shape[1:] == (22, 3)
            # The old job died with its server: asking about it is an error, not a hang.
            c.accept(job)
            err = request(c)
            assert (err.type, err["code"], err.job) == ("error", "unknown_job", job)
    finally:
        srv.stop()
        if restarted is not None:
            assert restarted.stop() == 0


def test_jobs_of_a_silent_client_are_dropped_after_the_client_timeout(tmp_path):
    srv = ServerProcess(tmp_path / "server.log", "--client-timeout", "2")
    try:
        welcome = srv.wait_ready()
        assert welcome["limits"]["client_timeout"] == 2.0
        seconds = welcome["limits"]["min_seconds"]
        with Client(srv.endpoint) as silent, Client(srv.endpoint) as pumped:
            # Two paused step jobs; one client then stops talking (a crashed Blender), the other keeps pumping.
            gone = silent.generate("a person jumps", job="gone", seconds=seconds, max_rounds=3, mode="step")
            kept = pumped.generate("a person waves", job="kept", seconds=seconds, max_rounds=3, mode="step")
            step_round(silent, gone)
            step_round(pumped, kept)
            quiet_until = time.monotonic() + 4.0  # the 2 s timeout, the sweep, and a margin
            while time.monotonic() < quiet_until:
                assert pumped.drain() == []  # only heartbeats, which recv swallows
                time.sleep(0.05)
            assert pumped.alive
            pumped.accept(kept)
            done = request(pumped)
            assert (done.type, done.job, done["reason"]) == ("done", kept, "accepted")
            # The silent client comes back: its job is gone (its KV cache freed), and it is told so.
            silent.accept(gone)
            err = request(silent)
            assert (err.type, err.job, err["code"]) == ("error", gone, "unknown_job")
            lines = [json.loads(line) for line in srv.log().splitlines() if line.startswith("{")]
            outcomes = {line["job"]: line["outcome"] for line in lines if line.get("event") == "job"}
            assert outcomes == {"gone": "client_gone", "kept": "accepted"}, outcomes
    finally:
        srv.stop()


@pytest.mark.parametrize("value", ["0", "0.5", "-3", "nan"])
def test_a_client_timeout_inside_the_heartbeat_interval_is_refused(value, capsys):
    # Every pumped client would lose its jobs between two heartbeats: refused before the model is loaded.
    assert main(["serve", "--bind", f"tcp://127.0.0.1:{free_port()}", "--client-timeout", value]) == 2
    assert "--client-timeout" in capsys.readouterr().err


def test_non_loopback_bind_without_keys_refuses_to_start(tmp_path):
    result = subprocess.run([sys.executable, "-m", "backend.cli.main", "serve", "--bind", f"tcp://0.0.0.0:{free_port()}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refusing to bind" in result.stderr and "irg-motion keys" in result.stderr and "--insecure" in result.stderr
    assert "Traceback" not in result.stderr


def test_curve_keys_let_in_listed_clients_only(tmp_path, capsys):
    keys = tmp_path / "keys"
    for name in ("server", "animator", "stranger"):
        assert main(["keys", str(keys), "--name", name]) == 0
    assert main(["keys", str(keys), "--name", "server"]) == 2  # never overwrites a key pair
    assert "already exists" in capsys.readouterr().err
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "animator.key").write_bytes((keys / "animator.key").read_bytes())
    srv = ServerProcess(tmp_path / "server.log", "--server-key", str(keys / "server.key_secret"),
                        "--client-keys", str(allowed))
    try:
        srv.wait_ready(curve=client_keys(keys / "animator.key_secret", keys / "server.key"))

        def ping(*key_args):
            code = main(["ping", srv.endpoint, "--timeout", "1", "--count", "1", *key_args])
            return code, capsys.readouterr()

        code, out = ping("--server-key", str(keys / "server.key"), "--client-key", str(keys / "animator.key_secret"))
        assert code == 0 and "latency" in out.out, out.err
        code, out = ping("--server-key", str(keys / "server.key"), "--client-key", str(keys / "stranger.key_secret"))
        assert code == 2 and "no answer" in out.err
        code, out = ping()  # plain text to a CURVE server
        assert code == 2 and "no answer" in out.err
    finally:
        assert srv.stop() == 0
