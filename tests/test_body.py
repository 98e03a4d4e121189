"""SMPL body: fitting, meshes and the commands, on a synthetic model file in SMPL's format."""
import numpy as np
import pytest
import torch
import trimesh

from backend.body.body_model import SmplParams, body_joints, body_vertices, load_body
from backend.body.fit import fit_smpl
from backend.body.mesh_export import write_mesh_sequence
from backend.body.smpl_files import SmplFilesError
from backend.cli.main import main
from backend.motion.io import Motion, load_motion, save_motion
from smpl_synthetic import write_synthetic_smpl


@pytest.fixture(scope="module")
def smpl_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smpl")
    write_synthetic_smpl(folder, chumpy=True)
    return folder


def _known_motion(body, frames=200, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    pose = np.cumsum(rng.normal(0, 0.02, (frames, 72)), axis=0)
    pose[:, -6:] = 0  # hands are not among the 22 joints
    transl = np.stack([np.linspace(0, 1, frames), np.full(frames, 0.9), np.zeros(frames)], -1)
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        joints = body_joints(body, t(pose[:, :3]), t(pose[:, 3:]), torch.zeros(1, 10), t(transl)).numpy()
    return joints * scale


def test_fitting_recovers_known_poses_within_a_centimetre(smpl_dir):
    body = load_body(smpl_dir)
    joints = _known_motion(body)
    params, report = fit_smpl(body, joints)
    assert report.mean_error_m < 0.01
    assert params.body_pose.shape == (200, 69) and params.global_orient.shape == (200, 3)
    refit = body_joints(body, *(torch.tensor(a) for a in (params.global_orient, params.body_pose)),
                        torch.tensor(params.betas)[None], torch.tensor(params.transl)).detach().numpy()
    assert np.linalg.norm(refit - joints, axis=-1).mean() < 0.01


def test_fitting_shape_explains_a_bigger_person(smpl_dir):
    body = load_body(smpl_dir)
    joints = _known_motion(body, frames=60, seed=1, scale=1.06)
    _, fixed = fit_smpl(body, joints)
    params, shaped = fit_smpl(body, joints, fit_shape=True)
    assert shaped.mean_error_m < 0.01 < fixed.mean_error_m or shaped.mean_error_m < 0.5 * fixed.mean_error_m
    assert params.betas[0] > 0.5  # beta 0 of the synthetic model is overall size


def test_meshes_reload_with_vertex_and_frame_counts(smpl_dir, tmp_path):
    body = load_body(smpl_dir)
    params = SmplParams(np.zeros((5, 3)), np.zeros((5, 69)), np.zeros(10), np.zeros((5, 3)))
    verts = body_vertices(body, params)
    assert verts.shape == (5, 192, 3)
    [glb] = write_mesh_sequence(verts, body.faces, tmp_path / "body.glb")
    scene = trimesh.load(glb)
    assert len(scene.geometry) == 5
    assert all(len(g.vertices) == 192 for g in scene.geometry.values())
    objs = write_mesh_sequence(verts, body.faces, tmp_path / "body.obj")
    assert len(objs) == 5 and len(trimesh.load(objs[3], process=False).vertices) == 192


def test_fit_and_mesh_commands(smpl_dir, tmp_path):
    body = load_body(smpl_dir)
    save_motion(tmp_path / "m.npz", Motion(joints=_known_motion(body, frames=20, seed=2)))
    assert main(["fit", str(tmp_path / "m.npz"), "--smpl-dir", str(smpl_dir), "--out", str(tmp_path / "fit.npz")]) == 0
    fitted = load_motion(tmp_path / "fit.npz")
    assert fitted.smpl["body_pose"].shape == (20, 69) and fitted.smpl["betas"].shape == (10,)
    assert main(["mesh", str(tmp_path / "fit.npz"), "--smpl-dir", str(smpl_dir), "--out", str(tmp_path / "b.ply"),
                 "--sequence"]) == 0
    assert len(list(tmp_path.glob("b_*.ply"))) == 20


def test_without_model_files_commands_say_what_to_get(tmp_path, capsys):
    save_motion(tmp_path / "m.npz", Motion(joints=np.zeros((4, 22, 3), np.float32) + np.arange(22)[None, :, None] * 0.1))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["mesh", str(tmp_path / "m.npz"), "--smpl-dir", str(empty), "--out", str(tmp_path / "b.glb")]) == 2
    err = capsys.readouterr().err
    assert "SMPL_NEUTRAL.pkl" in err and "smpl.is.tue.mpg.de" in err
    with pytest.raises(SmplFilesError, match="does not exist"):
        load_body(tmp_path / "nowhere")


def test_model_files_that_run_code_are_refused(tmp_path):
    import pickle

    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps({"v_template": print}))
    with pytest.raises(SmplFilesError, match="refusing to load"):
        load_body(tmp_path)
