"""BVH import: real CMU mocap from Debian's assimp-testmodels, synthetic Mixamo and SMPL files
written from known joints, bad files, and the `irg-motion import-bvh` command."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from backend.cli.main import main
from backend.motion.bvh import (
    BvhError, bvh_forward_kinematics, face_forward, import_bvh, local_rotations_and_translations, read_bvh,
)
from backend.motion.features import extract_features, recover_from_ric
from backend.motion.io import load_motion
from retarget.skeleton import JOINT_NAMES, PARENTS, bone_lengths, forward_kinematics, rest_offsets

MOCAP = Path("/usr/share/assimp/models/BVH")
needs_mocap = pytest.mark.skipif(not MOCAP.is_dir(), reason=f"{MOCAP} missing: apt-get install assimp-testmodels")
J = {name: i for i, name in enumerate(JOINT_NAMES)}


def _sided(left: str, right: str) -> dict[str, str]:
    return {f"left_{k}": left.format(k=v) for k, v in _LIMB.items()} | {f"right_{k}": right.format(k=v) for k, v in _LIMB.items()}


_LIMB = {"hip": "UpLeg", "knee": "Leg", "ankle": "Foot", "foot": "ToeBase", "collar": "Shoulder",
         "shoulder": "Arm", "elbow": "ForeArm", "wrist": "Hand"}
MIXAMO = {"pelvis": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Spine2", "neck": "Neck",
          "head": "Head"} | _sided("Left{k}", "Right{k}")
SMPL = {name: ("L_" if name.startswith("left_") else "R_" if name.startswith("right_") else "") + name.split("_")[-1].capitalize()
        for name in JOINT_NAMES}


# ------------------------------------------------------------------------------- synthetic files


def smooth_motion(seconds: float, fps: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """SMPL local rotations (T, 22, 3, 3) and root path (T, 3) in metres, smooth in time, sampled at fps."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * fps)) + 1) / fps
    amp, freq, phase = rng.uniform(0.1, 0.6, (22, 3)), rng.uniform(0.2, 0.8, (22, 3)), rng.uniform(0, 6.3, (22, 3))
    axis_angle = amp * np.sin(2 * np.pi * freq * t[:, None, None] + phase)
    rotations = Rotation.from_rotvec(axis_angle.reshape(-1, 3)).as_matrix().reshape(len(t), 22, 3, 3)
    root = np.stack([0.3 * np.sin(t), 0.95 + 0.05 * np.sin(3 * t), 1.2 * t], axis=-1)
    return rotations, root


def write_bvh(path: Path, names: dict[str, str], rotations: np.ndarray, root: np.ndarray, fps: float,
              prefix: str = "", finger: bool = False, z_up: bool = False) -> Path:
    """A BVH in centimetres with ZXY Euler channels (Euler angles from scipy, not from the code under test)."""
    offsets = rest_offsets() * 100.0
    offsets[0] = 0.0  # the root's place comes from its position channels
    if z_up:  # the same body in a frame turned +90 degrees about X: every offset, rotation and root position
        turn = Rotation.from_euler("x", 90, degrees=True).as_matrix()
        offsets, rotations, root = offsets @ turn.T, turn @ rotations @ turn.T, root @ turn.T
    frames = rotations.shape[0]
    lines, columns = ["HIERARCHY"], []

    def joint(j: int, depth: int) -> None:
        pad = "\t" * depth
        kind = "ROOT" if j == 0 else "JOINT"
        lines.append(f"{pad}{kind} {prefix}{names[JOINT_NAMES[j]]}")
        lines.append(pad + "{")
        lines.append(f"{pad}\tOFFSET {' '.join(f'{v:.6f}' for v in offsets[j])}")
        if j == 0:
            lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
            columns.append(root * 100.0)
        else:
            lines.append(f"{pad}\tCHANNELS 3 Zrotation Xrotation Yrotation")
        columns.append(Rotation.from_matrix(rotations[:, j]).as_euler("ZXY", degrees=True))
        kids = [c for c, p in enumerate(PARENTS) if p == j]
        for c in kids:
            joint(c, depth + 1)
        if finger and JOINT_NAMES[j] == "left_wrist":  # a joint SMPL has no place for: must be ignored
            lines.extend([f"{pad}\tJOINT {prefix}LeftHandIndex1", pad + "\t{", f"{pad}\t\tOFFSET 8 0 0",
                      f"{pad}\t\tCHANNELS 3 Zrotation Xrotation Yrotation",
                      f"{pad}\t\tEnd Site", pad + "\t\t{", f"{pad}\t\t\tOFFSET 3 0 0", pad + "\t\t}", pad + "\t}"])
            columns.append(np.full((frames, 3), 20.0))
        if not kids:
            lines.extend([f"{pad}\tEnd Site", pad + "\t{", f"{pad}\t\tOFFSET 0 5 0", pad + "\t}"])
        lines.append(pad + "}")

    joint(0, 0)
    data = np.concatenate(columns, axis=1)
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {1.0 / fps:.7f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in data]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def mixamo_bvh(tmp_path: Path) -> Path:
    rotations, root = smooth_motion(2.0, 20.0)
    return write_bvh(tmp_path / "mixamo.bvh", MIXAMO, rotations, root, 20.0, prefix="mixamorig:")


def _error(path: Path) -> str:
    with pytest.raises(BvhError) as info:
        import_bvh(path)
    return str(info.value)


# ------------------------------------------------------------------------------------ real mocap


@needs_mocap
@pytest.mark.parametrize(("name", "style", "unit"), [("01_01", "CMU", "cmu"), ("01_03", "CMU", "cmu"),
                                                     ("Boxing_Toes", "Biovision", "cm")])
def test_real_mocap_imports_as_a_plausible_human(name: str, style: str, unit: str) -> None:
    path = MOCAP / f"{name}.bvh"
    result = import_bvh(path)
    joints = result.joints
    source = read_bvh(path)
    assert result.fps == 20.0
    assert joints.shape[0] == int((len(source.values) - 1) * source.frame_time * 20 + 1e-6) + 1
    assert (result.convention, result.unit) == (style, unit)
    # Head joint over the ankles in the first (standing) frame. CMU subject 01's head joint is 1.36 m over
    # its ankles: the cgspeed conversion gives the thorax bone zero length (Neck and LeftShoulder sit on
    # Spine1), so the torso is ~12 cm shorter than the person; hence 1.3 rather than 1.4 as the lower bound.
    standing = joints[0, J["head"], 1] - joints[0, [J["left_ankle"], J["right_ankle"]], 1].mean()
    assert 1.3 < standing < 2.0, f"head over ankles {standing:.3f} m"
    feet = joints[:, [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]], 1]
    assert abs(feet[0].min()) < 0.05, "first frame's lowest foot joint should be on the floor (heights are kept)"
    assert np.median(feet.min(axis=1)) < 0.10, "a foot should touch the ground in most frames"
    lengths = bone_lengths(joints)
    assert (lengths.max(0) - lengths.min(0)).max() < 1e-3, "bone lengths must not change over time (1 mm)"
    assert lengths.min() > 0.02, "no SMPL bone may collapse to a point"
    # facing +Z at frame 0: the left hip is at +X
    assert joints[0, J["left_hip"], 0] > joints[0, J["right_hip"], 0]
    assert abs(joints[0, 0, 0]) < 1e-6 and abs(joints[0, 0, 2]) < 1e-6


def _features_round_trip_error(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame error (m) of recover_from_ric(extract_features(joints)) and the heading (degrees) per frame."""
    extracted = extract_features(import_bvh(MOCAP / f"{name}.bvh").joints)
    assert np.isfinite(extracted.features).all()
    error = np.abs(recover_from_ric(extracted.features) - extracted.positions[:-1]).max(axis=(1, 2))
    p = extracted.positions[:-1]
    across = p[:, J["right_hip"]] - p[:, J["left_hip"]] + p[:, J["right_shoulder"]] - p[:, J["left_shoulder"]]
    return error, np.degrees(np.arctan2(across[:, 2], -across[:, 0]))


@needs_mocap
@pytest.mark.parametrize("name", ["01_01", "01_03"])
def test_imported_mocap_survives_humanml3d_features(name: str) -> None:
    """Both clips turn through 180 degrees of heading, where HumanML3D's own yaw velocity flips sign;
    our features keep the root quaternions in one hemisphere, so the whole clip round-trips."""
    error, heading = _features_round_trip_error(name)
    assert (np.abs(np.diff(heading)) > 180).any(), "the clip should turn round (the case this test guards)"
    assert error.max() < 1e-4, f"features -> joints differs by {error.max():.2e} m"


@pytest.mark.slow
@needs_mocap
@pytest.mark.parametrize("name", ["01_01"])
def test_bvh_kinematics_match_blenders_importer(name: str) -> None:
    """Blender's own io_anim_bvh reads the same file to the same joint positions (independent implementation)."""
    bpy = pytest.importorskip("bpy")
    path = MOCAP / f"{name}.bvh"
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=str(path), global_scale=1.0, axis_forward="-Z", axis_up="Y", rotate_mode="NATIVE",
                            use_fps_scale=False, frame_start=1, update_scene_fps=False, update_scene_duration=True)
    armature = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    bvh = read_bvh(path)
    positions = bvh_forward_kinematics(bvh, *local_rotations_and_translations(bvh))
    worst = 0.0
    for frame in (0, 1, 250, len(bvh.values) - 1):
        bpy.context.scene.frame_set(frame + 1)
        for j, name_j in enumerate(bvh.names):
            x, y, z = armature.pose.bones[name_j].head  # Blender is Z up: file (x, y, z) = Blender (x, z, -y)
            worst = max(worst, np.abs(np.array([x, z, -y]) - positions[frame, j]).max())
    assert worst < 1e-3, f"{worst} file units from Blender's importer"
    bpy.ops.wm.read_factory_settings(use_empty=True)


# -------------------------------------------------------------------------------- synthetic skeletons


@pytest.mark.parametrize(("style", "names", "prefix"), [
    ("Mixamo", MIXAMO, "mixamorig:"), ("Mixamo", MIXAMO, ""), ("SMPL", SMPL, ""),
])
def test_synthetic_skeleton_imports_to_its_joints(tmp_path: Path, style: str, names: dict, prefix: str) -> None:
    rotations, root = smooth_motion(3.0, 30.0, seed=1)
    expected, _ = forward_kinematics(rotations, root)
    path = write_bvh(tmp_path / "take.bvh", names, rotations, root, 30.0, prefix=prefix, finger=True)
    result = import_bvh(path, fps=30.0)
    assert (result.convention, result.unit) == (style, "cm")
    assert result.joints.shape == expected.shape
    error = np.abs(result.joints - face_forward(expected)).max()  # the same rigid placement on both
    assert error < 1e-3, f"{error * 1000:.3f} mm from the joints the file was written from"


@pytest.mark.parametrize("source_fps", [60.0, 50.0])  # whole and half source frames
def test_resampling_to_20_fps_lands_on_the_true_pose(tmp_path: Path, source_fps: float) -> None:
    rotations, root = smooth_motion(3.0, source_fps, seed=2)
    path = write_bvh(tmp_path / "take.bvh", MIXAMO, rotations, root, source_fps)
    result = import_bvh(path, fps=20.0)
    truth_rot, truth_root = smooth_motion(3.0, 20.0, seed=2)  # the same continuous motion sampled at 20 fps
    expected, _ = forward_kinematics(truth_rot, truth_root)
    assert result.joints.shape == expected.shape
    error = np.abs(result.joints - face_forward(expected)).max()
    assert error < 1e-3, f"{error * 1000:.3f} mm off the true pose after resampling from {source_fps:g} fps"


def test_z_up_file_imports_upright(tmp_path: Path) -> None:
    rotations, root = smooth_motion(2.0, 20.0, seed=5)
    expected, _ = forward_kinematics(rotations, root)
    path = write_bvh(tmp_path / "zup.bvh", MIXAMO, rotations, root, 20.0, z_up=True)
    error = np.abs(import_bvh(path).joints - face_forward(expected)).max()
    assert error < 1e-3, f"{error * 1000:.3f} mm from the joints of the same body written Y up"


def test_placement_faces_plus_z_keeping_heights(tmp_path: Path) -> None:
    rotations, root = smooth_motion(2.0, 20.0, seed=3)
    rotations[:, 0] = Rotation.from_euler("y", 120, degrees=True).as_matrix() @ rotations[:, 0]
    path = write_bvh(tmp_path / "turned.bvh", MIXAMO, rotations, root, 20.0)
    joints = import_bvh(path).joints
    first = joints[0]
    across = first[J["right_hip"]] - first[J["left_hip"]] + first[J["right_shoulder"]] - first[J["left_shoulder"]]
    forward = np.cross([0, 1, 0], across)
    assert np.degrees(np.arctan2(forward[0], forward[2])) == pytest.approx(0.0, abs=0.01)
    assert abs(joints[0, 0, 0]) < 1e-6 and abs(joints[0, 0, 2]) < 1e-6
    expected, _ = forward_kinematics(rotations, root)
    assert np.abs(joints[..., 1] - expected[..., 1]).max() < 1e-3, "turning about Y must keep every height"
    assert np.abs(bone_lengths(joints) - bone_lengths(expected)).max() < 1e-3, "placement must be rigid"


# --------------------------------------------------------------------------------------- bad input


def test_missing_hips_names_the_joint_and_what_was_found(mixamo_bvh: Path, tmp_path: Path) -> None:
    bad = tmp_path / "nohips.bvh"
    bad.write_text(mixamo_bvh.read_text().replace("mixamorig:Hips", "mixamorig:Root"))
    message = _error(bad)
    assert "pelvis (looked for Hips)" in message and "mixamorig:Root" in message and "mixamorig:LeftUpLeg" in message


def test_missing_arm_lists_each_missing_smpl_joint(mixamo_bvh: Path, tmp_path: Path) -> None:
    bad = tmp_path / "noforearm.bvh"
    bad.write_text(mixamo_bvh.read_text().replace("LeftForeArm", "LeftLowerArm").replace("RightHand", "RightPalm"))
    message = _error(bad)
    assert "left_elbow (looked for LeftForeArm)" in message and "right_wrist (looked for RightHand)" in message
    assert "mixamorig:LeftLowerArm" in message and "closest naming is Mixamo-style" in message


def test_no_root_joint(tmp_path: Path) -> None:
    bad = tmp_path / "noroot.bvh"
    bad.write_text("HIERARCHY\nMOTION\nFrames: 1\nFrame Time: 0.05\n0 0 0\n")
    assert "has no ROOT joint" in _error(bad)


def test_truncated_motion_data(mixamo_bvh: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cut.bvh"
    bad.write_text("\n".join(mixamo_bvh.read_text().splitlines()[:-10]))
    assert "truncated: 'Frames: 41' but only 31 frame lines are present" in _error(bad)


def test_empty_motion_section(mixamo_bvh: Path, tmp_path: Path) -> None:
    head = mixamo_bvh.read_text().split("MOTION")[0]
    (tmp_path / "a.bvh").write_text(head + "MOTION\n")
    (tmp_path / "b.bvh").write_text(head + "MOTION\nFrames: 0\nFrame Time: 0.05\n")
    assert "must start with 'Frames: N'" in _error(tmp_path / "a.bvh")
    assert "MOTION section is empty (Frames: 0)" in _error(tmp_path / "b.bvh")


def test_channel_count_mismatch(mixamo_bvh: Path, tmp_path: Path) -> None:
    text = mixamo_bvh.read_text()
    (tmp_path / "declared.bvh").write_text(text.replace("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 3 Zrotation Xrotation", 1))
    assert "declares CHANNELS 3 but lists 2 channel names" in _error(tmp_path / "declared.bvh")
    (tmp_path / "values.bvh").write_text(text.replace("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 2 Zrotation Xrotation", 1))
    assert "frame 1 has 69 values but the HIERARCHY declares 68 channels" in _error(tmp_path / "values.bvh")


def test_not_a_bvh_file(tmp_path: Path) -> None:
    (tmp_path / "notes.bvh").write_text("just some notes\n")
    (tmp_path / "binary.bvh").write_bytes(bytes(range(256)) * 4)
    assert "is not a BVH file" in _error(tmp_path / "notes.bvh")
    assert "is not a BVH file" in _error(tmp_path / "binary.bvh")
    assert "no such file" in _error(tmp_path / "absent.bvh")


# --------------------------------------------------------------------------------------------- CLI


def test_cli_writes_a_loadable_motion(mixamo_bvh: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "take.npz"
    assert main(["import-bvh", str(mixamo_bvh), "--out", str(out), "--fps", "10"]) == 0
    motion = load_motion(out)
    assert motion.fps == 10.0 and motion.joints.shape == (21, 22, 3)


def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at the terminal width; keep the line whole for the check
    bad = tmp_path / "notes.bvh"
    bad.write_text("just some notes\n")
    assert main(["import-bvh", str(bad), "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a BVH file" in err and "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()
