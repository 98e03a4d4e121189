"""The wire format on its own: what encodes, what decodes, and what is refused before anything is allocated."""
import msgpack
import numpy as np
import pytest
import zmq

from backend import protocol
from backend.protocol import ProtocolError, decode, encode


def header(**fields):
    return msgpack.packb({"v": protocol.PROTOCOL_VERSION, **fields}, use_bin_type=True)


def round_frames(joints, **overrides):
    fields = dict(round=0, codes=[1, 2, 3], assessment="ok", instruction="", final=True, error="", fps=20.0)
    fields.update(overrides)
    return encode("round", "job1", arrays={"joints": joints}, **fields)


def test_round_survives_the_wire_bit_exact_and_little_endian():
    joints = np.random.default_rng(0).standard_normal((200, 22, 3)).astype(np.float32)
    frames = round_frames(joints)
    assert len(frames) == 2 and bytes(frames[1]) == joints.astype("<f4").tobytes()
    msg = decode([bytes(f) for f in frames], replies=True)
    assert (msg.type, msg.job, msg["round"], msg["codes"], msg["final"]) == ("round", "job1", 0, [1, 2, 3], True)
    assert msg.arrays["joints"].shape == (200, 22, 3)
    np.testing.assert_array_equal(msg.arrays["joints"], joints)


def test_big_endian_and_float64_inputs_are_sent_as_little_endian_float32():
    joints = np.arange(2 * 22 * 3, dtype=">f8").reshape(2, 22, 3)
    msg = decode([bytes(f) for f in round_frames(joints)], replies=True)
    assert msg.arrays["joints"].dtype == np.dtype("<f4")
    np.testing.assert_array_equal(msg.arrays["joints"], joints.astype(np.float32))


def test_an_empty_round_has_zero_frames_and_decodes():
    msg = decode([bytes(f) for f in round_frames(np.zeros((0, 22, 3), np.float32), error="no motion span")],
                 replies=True)
    assert msg.arrays["joints"].shape == (0, 22, 3) and msg["error"] == "no motion span"


def test_generate_request_decodes_with_its_fields():
    msg = decode(encode("generate", "j", prompt="a person jumps", seconds=3, mode="step", seed=None))
    assert msg.job == "j" and msg["prompt"] == "a person jumps" and msg["seconds"] == 3 and msg["seed"] is None


@pytest.mark.parametrize(
    "frames, code, words",
    [
        ([], "bad_message", "empty"),
        ([b"\xc1\xc1\xc1"], "bad_message", "msgpack"),
        ([msgpack.packb([1, 2, 3])], "bad_message", "map"),
        ([msgpack.packb({"v": 2, "type": "ping"})], "bad_version", "version 2"),
        ([msgpack.packb({"type": "ping"})], "bad_version", "version None"),
        ([msgpack.packb({"v": True, "type": "ping"})], "bad_version", "version True"),  # true == 1 in Python
        ([msgpack.packb({"v": "1", "type": "ping"})], "bad_version", "version '1'"),
        ([header(type="launch_missiles")], "unknown_type", "launch_missiles"),
        ([header(type=["ping"])], "unknown_type", "['ping']"),  # unhashable: must not become an internal error
        ([header(type={"ping": 1})], "unknown_type", "{'ping': 1}"),
        ([header(type="welcome")], "unknown_type", "welcome"),  # a reply type is not a request
        ([header(type="generate", prompt="x")], "bad_field", "job"),
        ([header(type="generate", job="j")], "bad_field", "prompt"),
        ([header(type="generate", job="j", prompt=5)], "bad_field", "generate.prompt"),
        ([header(type="generate", job="j", prompt="x", seconds=True)], "bad_field", "seconds"),
        ([header(type="generate", job="j", prompt="x", seconds=float("nan"))], "bad_field", "finite"),
        ([header(type="refine", job="j", round="0")], "bad_field", "refine.round"),
        ([header(type="cancel", job="x" * 65)], "bad_field", "job"),
        ([header(type="ping")] + [b""] * protocol.MAX_FRAMES, "too_many_frames", "frames"),
        ([header(type="ping", pad="x" * (protocol.MAX_HEADER_BYTES + 1))], "header_too_large", "limit"),
        ([header(type="ping", blob=b"\x00" * 10)], "bad_message", "msgpack"),  # no binary fields in headers
        ([msgpack.packb({"v": 1, "type": "ping", "x": msgpack.ExtType(1, b"a")})], "bad_message", "msgpack"),
    ],
)
def test_malformed_requests_are_refused_with_a_code_and_a_reason(frames, code, words):
    with pytest.raises(ProtocolError) as err:
        decode(frames)
    assert err.value.code == code
    assert words in str(err.value)


def test_errors_do_not_echo_a_whole_header_back():
    with pytest.raises(ProtocolError) as err:
        decode([header(type="x" * 60_000)])
    assert err.value.code == "unknown_type" and len(str(err.value)) < 300


def test_error_names_the_job_when_the_header_had_one():
    with pytest.raises(ProtocolError) as err:
        decode([header(type="refine", job="job7", round=1.5)])
    assert err.value.job == "job7"


def joints_header(shape, dtype="<f4", name="joints"):
    return header(type="round", job="j", round=0, codes=[], assessment="", instruction="", final=False, error="",
                  fps=20.0, arrays=[{"name": name, "shape": shape, "dtype": dtype}])


@pytest.mark.parametrize(
    "head, payload, words",
    [
        (joints_header([2, 22, 3]), b"\0" * 7, "needs 528 bytes, got 7"),
        (joints_header([2, 21, 3]), b"\0" * (2 * 21 * 3 * 4), "shape (T, 22, 3)"),
        (joints_header([2, 22, 3], dtype="<f8"), b"\0" * (2 * 22 * 3 * 8), "dtype"),
        (joints_header([2, 22, 3], name="rotations"), b"\0" * 528, "unexpected array 'rotations'"),
        (joints_header([-1, 22, 3]), b"", "non-negative"),
        # A lying header must not make the receiver allocate: refused on the numbers alone.
        (joints_header([10**12, 22, 3]), b"", "elements"),
    ],
)
def test_array_frames_must_match_their_declared_shape_and_dtype(head, payload, words):
    with pytest.raises(ProtocolError) as err:
        decode([head, payload], replies=True)
    assert err.value.code == "bad_array" and words in str(err.value)


def test_a_round_without_its_joints_frame_is_refused():
    frames = round_frames(np.zeros((2, 22, 3), np.float32))
    with pytest.raises(ProtocolError, match="array"):
        decode([frames[0]], replies=True)


def test_client_reports_a_dead_endpoint_as_not_alive_and_returns_nothing():
    # Nothing listens on this inproc name: the client must neither block nor claim the server is alive.
    ctx = zmq.Context()
    try:
        with protocol.Client("inproc://nobody-here", context=ctx, heartbeat_timeout=0.05) as client:
            assert client.recv(timeout=0.1) is None
            assert not client.alive
            assert client.drain(budget=0.01) == []
    finally:
        ctx.term()


def test_client_swallows_heartbeats_and_returns_other_messages_in_order():
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind("inproc://fake-server")
    try:
        with protocol.Client("inproc://fake-server", context=ctx) as client:
            client.hello()
            peer, *frames = router.recv_multipart()
            assert decode(frames).type == "hello"
            for part in (encode("heartbeat"), encode("done", "j", rounds=1, reason="finished"),
                         encode("heartbeat"), encode("cancelled", "k")):
                router.send_multipart([peer, *part])
            got = [client.recv(timeout=1.0) for _ in range(2)]
            assert [(m.type, m.job) for m in got] == [("done", "j"), ("cancelled", "k")]
            assert client.alive
            # A broken reply becomes an error message for the caller, not an exception inside a UI timer.
            router.send_multipart([peer, b"\xc1"])
            bad = client.recv(timeout=1.0)
            assert bad.type == "error" and bad["code"] == "bad_message" and "server" in bad["message"]
    finally:
        router.close(linger=0)
        ctx.term()
