import numpy as np
import pytest

from backend.motion.io import Motion, MotionFileError, MotionRound, load_motion, save_motion
from backend.cli.motion_commands import synthetic_motion


def test_save_and_load_keeps_joints_text_and_rounds(tmp_path):
    joints = synthetic_motion(40)
    rounds = [MotionRound(joints=joints[:20], codes=[1, 2, 3], assessment="too slow", instruction="walk faster"),
              MotionRound(joints=joints, codes=[4, 5], assessment="matches", final=True)]
    path = save_motion(tmp_path / "walk.npz", Motion(joints=joints, fps=20, text="a person walks", rounds=rounds))
    back = load_motion(path)
    assert np.array_equal(back.joints, joints) and back.fps == 20 and back.text == "a person walks"
    assert [r.codes for r in back.rounds] == [[1, 2, 3], [4, 5]]
    assert back.rounds[0].instruction == "walk faster" and back.rounds[1].final
    assert back.rounds[0].joints.shape == (20, 22, 3)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"joints": np.zeros((10, 24, 3), np.float32), "fps": 20.0}, r"shape \(frames, 22, 3\)"),
        ({"joints": np.zeros((1, 22, 3), np.float32), "fps": 20.0}, "at least 2"),
        ({"joints": np.full((5, 22, 3), np.nan, np.float32), "fps": 20.0}, "NaN"),
        ({"joints": np.zeros((5, 22, 3), np.float32), "fps": 0.0}, "fps must be between"),
        ({"joints": np.zeros((5, 22, 3), np.float32)}, "missing 'fps'"),
        ({"fps": 20.0}, "missing the 'joints'"),
        ({"joints": synthetic_motion(5) * 100, "fps": 20.0}, "metres"),
    ],
)
def test_loading_bad_files_names_the_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(MotionFileError, match=message):
        load_motion(path)


def test_not_a_motion_file(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello")
    with pytest.raises(MotionFileError, match="not a readable"):
        load_motion(path)
    with pytest.raises(MotionFileError, match="no such file"):
        load_motion(tmp_path / "missing.npz")
