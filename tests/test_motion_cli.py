import subprocess
import sys

import numpy as np

from backend.cli.main import main
from backend.cli.motion_commands import synthetic_motion
from backend.motion.features import extract_features
from backend.motion.io import Motion, load_motion, save_motion


def test_features_and_joints_commands_round_trip(tmp_path):
    joints = synthetic_motion(60)
    save_motion(tmp_path / "m.npz", Motion(joints=joints))
    assert main(["features", str(tmp_path / "m.npz"), "--out", str(tmp_path / "f.npy")]) == 0
    feats = np.load(tmp_path / "f.npy")
    assert feats.shape == (59, 263)
    assert main(["joints", str(tmp_path / "f.npy"), "--out", str(tmp_path / "back.npz")]) == 0
    back = load_motion(tmp_path / "back.npz")
    assert np.abs(back.joints - extract_features(joints).positions[:-1]).max() < 1e-4


def test_wrong_feature_width_is_a_readable_error(tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.zeros((30, 200), np.float32))
    assert main(["joints", str(tmp_path / "f.npy"), "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert "263-d" in err and "200-d" in err and "Traceback" not in err


def test_check_command_passes_as_an_installed_console_script():
    result = subprocess.run([sys.executable, "-m", "backend.cli.main", "check"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "joints -> features -> joints" in result.stdout
