import time

import numpy as np
import pytest

from retarget import rotations as R
from retarget import skeleton as S


def test_skeleton_tables_agree():
    assert S.NUM_JOINTS == 22 and len(S.PARENTS) == 22
    assert S.PARENTS == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
    for chain in S.KINEMATIC_CHAIN:  # every chain link is a parent -> child edge
        for a, b in zip(chain[:-1], chain[1:]):
            assert S.PARENTS[b] == a
    assert np.allclose(np.linalg.norm(S.RAW_OFFSETS[1:], axis=-1), 1.0)


def test_rest_pose_is_a_human_in_metres_facing_plus_z():
    j = S.REST_JOINTS
    height = j[S.joint_index("head"), 1] - j[S.joint_index("left_ankle"), 1]
    assert 1.3 < height < 1.6  # head joint to ankle of a ~1.7 m person
    assert j[S.joint_index("left_hip"), 0] > 0 > j[S.joint_index("right_hip"), 0]  # left is +X when facing +Z
    assert j[S.joint_index("left_foot"), 2] > j[S.joint_index("left_ankle"), 2]    # toes point forward (+Z)


def test_joint_index_accepts_common_spellings_and_names_choices():
    assert S.joint_index("L_Knee") == 4
    assert S.joint_index("right-wrist") == 21
    assert S.joint_index("Hips") == 0
    with pytest.raises(KeyError, match="left_hip"):
        S.joint_index("tail")


def test_fk_of_rest_pose_reproduces_rest_joints():
    identity = np.broadcast_to(np.eye(3), (3, 22, 3, 3))
    pos, glob = S.forward_kinematics(identity, np.repeat(S.REST_JOINTS[None, 0], 3, 0))
    assert np.abs(pos - S.REST_JOINTS).max() < 1e-12
    assert np.allclose(glob, np.eye(3))


def test_fk_bends_the_elbow_where_asked():
    local = np.broadcast_to(np.eye(3), (1, 22, 3, 3)).copy()
    elbow = S.joint_index("left_elbow")
    local[0, elbow] = R.axis_angle_to_matrix(np.array([0.0, np.pi / 2, 0.0]))  # 90 degrees about Y
    pos, _ = S.forward_kinematics(local, S.REST_JOINTS[None, 0])
    upper = pos[0, elbow] - pos[0, S.joint_index("left_shoulder")]
    fore = pos[0, S.joint_index("left_wrist")] - pos[0, elbow]
    angle = np.degrees(np.arccos(upper @ fore / np.linalg.norm(upper) / np.linalg.norm(fore)))
    assert 80 < angle < 100  # the rest arm is nearly straight, so the bend is close to 90 degrees
    assert np.allclose(S.bone_lengths(pos), S.bone_lengths(S.REST_JOINTS[None]))


def test_fk_of_10000_frames_is_fast():
    rot = R.axis_angle_to_matrix(np.random.default_rng(0).normal(0, 0.3, (10_000, 22, 3)))
    start = time.perf_counter()
    pos, _ = S.forward_kinematics(rot, np.zeros((10_000, 3)))
    assert time.perf_counter() - start < 1.0  # the bound; typically ~0.1 s
    assert np.allclose(S.bone_lengths(pos), S.bone_lengths(S.REST_JOINTS[None]), atol=1e-9)


def test_fk_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(T, 22, 3, 3\)"):
        S.forward_kinematics(np.zeros((5, 21, 3, 3)), np.zeros((5, 3)))


def test_quaternion_matrix_round_trip_and_sign_fix():
    rng = np.random.default_rng(1)
    q = R.qnormalize(rng.normal(size=(500, 4)))
    m = R.quat_to_matrix(q)
    q2 = R.matrix_to_quat(m)
    assert np.allclose(np.abs((q * q2).sum(-1)), 1.0, atol=1e-9)
    v = rng.normal(size=(500, 3))
    assert np.allclose(R.qrot(q, v), np.einsum("nij,nj->ni", m, v))
    flipped = q[:1].repeat(10, 0) * np.array([1, -1] * 5)[:, None]
    assert ((R.qfix(flipped)[1:] * R.qfix(flipped)[:-1]).sum(-1) > 0).all()
    aa = rng.normal(size=(100, 3))
    aa *= (np.pi * 0.99 / np.linalg.norm(aa, axis=-1, keepdims=True)) * rng.uniform(0, 1, (100, 1))
    assert np.allclose(R.quat_to_axis_angle(R.axis_angle_to_quat(aa)), aa)
