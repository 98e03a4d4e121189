"""`irg-motion serve --smpl-dir`: every round also carries SMPL parameters fitted to its joints."""
import numpy as np
import pytest
import torch

from backend import protocol
from backend.body.body_model import body_joints, load_body
from backend.protocol import Client
from smpl_synthetic import write_synthetic_smpl
from test_server import ServerProcess, collect

pytestmark = pytest.mark.slow


def test_rounds_carry_fitted_smpl_parameters(tmp_path):
    smpl_dir = tmp_path / "smpl"
    write_synthetic_smpl(smpl_dir)
    server = ServerProcess(tmp_path / "server.log", "--smpl-dir", str(smpl_dir))
    try:
        welcome = server.wait_ready()
        assert "smpl_params" in welcome["capabilities"]
        with Client(server.endpoint) as client:
            job = client.generate("a person waves with the right hand", seconds=2.0, max_rounds=1)
            rounds = [m for m in collect(client, job, timeout=120) if m.type == "round"]
    finally:
        server.stop()
    assert rounds, "no round arrived"
    arrays = rounds[0].arrays
    frames = arrays["joints"].shape[0]
    assert arrays["smpl_body_pose"].shape == (frames, 69) and arrays["smpl_betas"].shape == (10,)
    body = load_body(smpl_dir)
    refit = body_joints(body, *(torch.tensor(np.array(arrays[k])) for k in ("smpl_global_orient", "smpl_body_pose")),
                        torch.tensor(np.array(arrays["smpl_betas"]))[None], torch.tensor(np.array(arrays["smpl_transl"])))
    error = np.linalg.norm(refit.detach().numpy() - arrays["joints"], axis=-1).mean()
    assert error < 0.03, f"the fitted body is {error * 100:.1f} cm from the round's joints"


def test_missing_smpl_files_stop_the_server_with_a_message(tmp_path):
    server = ServerProcess(tmp_path / "server.log", "--smpl-dir", str(tmp_path / "nowhere"))
    code = server.proc.wait(60)
    log = server.log()
    server.stop()
    assert code == 2 and "SMPL" in log and "Traceback" not in log


def test_rounds_without_smpl_arrays_still_decode():
    frames = protocol.encode("round", "j", arrays={"joints": np.zeros((4, 22, 3), np.float32)}, round=0, codes=[],
                             assessment="", instruction="", final=True, error="", fps=20.0)
    assert protocol.decode(frames, replies=True).arrays.keys() == {"joints"}
