import numpy as np
import pytest
import torch

from backend.motion import torch_features
from backend.motion.features import extract_features, recover_from_ric
from backend.motion.normalize import Normalizer, compute_mean_std
from backend.motion.spec import KIT, T2M, spec_for_dim
from backend.cli.motion_commands import synthetic_motion
from retarget import skeleton as S
from synthetic_walk import synthetic_walk


def test_feature_layout_matches_the_dataset():
    assert T2M.dim == 263 and KIT.dim == 251
    assert (T2M.root_rot_velocity, T2M.root_linear_velocity, T2M.root_height) == (slice(0, 1), slice(1, 3), slice(3, 4))
    assert (T2M.ric, T2M.rotations, T2M.local_velocity, T2M.foot_contact) == (
        slice(4, 67), slice(67, 193), slice(193, 259), slice(259, 263))
    assert spec_for_dim(251) is KIT
    with pytest.raises(ValueError, match="263-d"):
        spec_for_dim(300)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_on_fk_motions(seed):
    joints = synthetic_motion(frames=150, seed=seed)
    ex = extract_features(joints)
    assert ex.features.shape == (149, 263) and ex.features.dtype == np.float32
    err = np.abs(recover_from_ric(ex.features) - ex.positions[:-1]).max()
    assert err < 1e-4, f"round trip error {err:.2e} m"


def test_processing_puts_the_motion_on_the_floor_at_the_origin_facing_plus_z():
    joints = synthetic_motion(frames=60, seed=3)
    # move it somewhere else, turned 120 degrees, 2 m up: processing must undo all of that
    yaw = np.radians(120)
    rot = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    moved = joints @ rot.T + np.array([5.0, 2.0, -3.0])
    a, b = extract_features(joints), extract_features(moved)
    assert np.abs(a.positions - b.positions).max() < 1e-4
    assert np.abs(a.features - b.features).max() < 1e-3
    p = a.positions
    assert abs(p[..., 1].min()) < 1e-6
    assert np.abs(p[0, 0, [0, 2]]).max() < 1e-6
    across = (p[0, 2] - p[0, 1]) + (p[0, 17] - p[0, 16])  # right minus left: points to -X when facing +Z
    assert across[0] < 0 and abs(across[2]) < 1e-6


def test_processing_scales_to_the_reference_skeleton():
    joints = synthetic_motion(frames=40, seed=4) * 1.2  # a taller person
    p = extract_features(joints).positions
    assert np.allclose(S.bone_lengths(p), S.bone_lengths(S.REST_JOINTS[None]), atol=1e-5)


def test_foot_contacts_on_a_synthetic_walk():
    joints, left, right = synthetic_walk()
    ex = extract_features(joints)
    contact = ex.features[:, T2M.foot_contact]
    # a contact describes the step from frame t to t+1: planted at both ends
    left_planted = left[:-1] & left[1:]
    right_planted = right[:-1] & right[1:]
    assert (contact[:, 0] == left_planted).all() and (contact[:, 1] == left_planted).all()
    assert (contact[:, 2] == right_planted).all() and (contact[:, 3] == right_planted).all()
    assert 0.3 < left_planted.mean() < 0.8  # both planted and flying frames are present
    err = np.abs(recover_from_ric(ex.features) - ex.positions[:-1]).max()
    assert err < 1e-4
    # the walk goes forward: root XZ velocity in the facing frame is +Z
    assert ex.features[:, 2].mean() > 0.01


def test_torch_recover_matches_numpy_and_batches():
    feats = np.stack([extract_features(synthetic_motion(80, s)).features for s in (5, 6)])
    ours = torch_features.recover_from_ric(torch.from_numpy(feats)).numpy()
    assert np.abs(ours - recover_from_ric(feats)).max() < 1e-5


def test_mean_std_groups_and_normalizer():
    feats = [extract_features(synthetic_motion(60, s)).features for s in range(3)]
    mean, std = compute_mean_std(feats)
    assert mean.shape == std.shape == (263,)
    assert np.unique(std[T2M.ric]).size == 1 and np.unique(std[T2M.rotations]).size == 1
    norm = Normalizer(mean, std)
    x = feats[0]
    assert np.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-5)
    t = torch.from_numpy(x)
    assert torch.allclose(norm.denormalize(norm.normalize(t)), t, atol=1e-5)
    with pytest.raises(ValueError, match="251-d"):
        norm.normalize(np.zeros((4, 251), np.float32))


def test_bad_input_says_what_is_wrong():
    with pytest.raises(ValueError, match=r"\(frames, 22, 3\)"):
        extract_features(np.zeros((10, 24, 3)))
    with pytest.raises(ValueError, match="at least 2 frames"):
        extract_features(synthetic_motion(10)[:1])
    bad = synthetic_motion(10)
    bad[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        extract_features(bad)
    with pytest.raises(ValueError, match="263-d .*251-d|got 100-d"):
        recover_from_ric(np.zeros((10, 100), np.float32))
