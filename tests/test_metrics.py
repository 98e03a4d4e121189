"""The metric functions on cases whose answer is known."""
import numpy as np
import pytest

from retarget.skeleton import REST_JOINTS
from training import metrics

FPS = 20.0


def test_fid_is_zero_for_identical_sets_and_the_squared_shift_for_a_shifted_set():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(500, 8))
    assert metrics.frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([3.0, 0, 0, 0, 0, 0, 0, 4.0])  # same covariance, means 5 apart
    assert metrics.frechet_distance(real, real + shift) == pytest.approx(25.0, rel=1e-6)
    assert metrics.frechet_distance(real, 2 * real) > 1.0  # a wider spread is far too


def test_perfectly_matched_pairs_give_r_precision_one_and_zero_mm_dist():
    emb = np.random.default_rng(1).normal(size=(96, 16))
    np.testing.assert_allclose(metrics.r_precision(emb, emb), [1.0, 1.0, 1.0])
    assert metrics.matching_score(emb, emb) == pytest.approx(0.0, abs=1e-6)


def test_shuffled_pairs_are_near_chance():
    rng = np.random.default_rng(2)
    texts, motions = rng.normal(size=(32 * 300, 16)), rng.normal(size=(32 * 300, 16))
    top = metrics.r_precision(texts, motions)
    np.testing.assert_allclose(top, [1 / 32, 2 / 32, 3 / 32], atol=0.006)
    assert metrics.matching_score(texts, motions) == pytest.approx(np.sqrt(2 * 16), rel=0.05)


def test_the_partial_last_chunk_is_dropped():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(40, 16))
    motions = emb.copy()
    motions[32:] = rng.normal(size=(8, 16))  # eight mismatched pairs after the only full chunk
    assert metrics.r_precision(emb, motions)[0] == 1.0
    with pytest.raises(ValueError, match="at least 32"):
        metrics.r_precision(emb[:31], emb[:31])


def test_r_precision_ranks_by_distance_within_each_chunk():
    # text i sits nearest to motion i+1 (cyclically) and second nearest to its own motion: top-1 0, top-2 1
    angles = np.arange(32) * 2 * np.pi / 32
    motions = np.stack([np.cos(angles), np.sin(angles)], 1)
    texts = np.stack([np.cos(angles + 0.6 * 2 * np.pi / 32), np.sin(angles + 0.6 * 2 * np.pi / 32)], 1)
    np.testing.assert_allclose(metrics.r_precision(texts, motions), [0.0, 1.0, 1.0])


def test_diversity_and_multimodality_scale_with_the_spread():
    emb = np.random.default_rng(4).normal(size=(400, 8))
    d1 = metrics.diversity(emb, np.random.default_rng(0))
    assert metrics.diversity(3 * emb, np.random.default_rng(0)) == pytest.approx(3 * d1)
    assert d1 == pytest.approx(np.sqrt(2 * 8), rel=0.1)
    assert metrics.diversity(np.ones((400, 8)), np.random.default_rng(0)) == 0.0
    with pytest.raises(ValueError, match="300"):
        metrics.diversity(emb[:100], np.random.default_rng(0))

    same = np.repeat(emb[:10, None], 30, axis=1)  # 10 texts, 30 identical generations each
    assert metrics.multimodality(same, np.random.default_rng(0)) == 0.0
    spread = same + np.random.default_rng(5).normal(size=same.shape)
    assert metrics.multimodality(spread, np.random.default_rng(0)) > 2.0


def test_interval_is_196_std_over_sqrt_n():
    mean, interval = metrics.mean_and_interval([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert interval == pytest.approx(1.96 * np.std([1, 2, 3, 4]) / 2)
    summary = metrics.summarize([{"top1": 0.5}, {"top1": 0.7}])
    assert summary["top1"][0] == pytest.approx(0.6)


def standing(frames: int) -> np.ndarray:
    pose = REST_JOINTS - np.array([0.0, REST_JOINTS[:, 1].min(), 0.0])  # lowest joint on the floor
    return np.repeat(pose[None], frames, axis=0)


def test_skating_is_detected_on_a_sliding_foot_and_not_on_a_planted_one():
    planted = standing(40)
    assert metrics.foot_skating_ratio(planted, FPS) == 0.0

    sliding = planted.copy()
    sliding[:, 10, 2] += np.arange(40) * 1.0 / FPS  # left foot slides forward at 1 m/s on the floor
    assert metrics.foot_skating_ratio(sliding, FPS) == pytest.approx(0.5)  # one of the two feet skates

    slow = planted.copy()
    slow[:, 10, 2] += np.arange(40) * 0.2 / FPS  # 0.2 m/s: below the 0.5 m/s threshold
    assert metrics.foot_skating_ratio(slow, FPS) == 0.0

    swinging = sliding.copy()
    swinging[:, 10, 1] += 0.3  # the same motion 30 cm above the floor is a swing, not a skate
    assert metrics.foot_skating_ratio(swinging, FPS) == 0.0


def test_ground_penetration_measures_depth_below_the_floor():
    on_floor = standing(10)
    assert metrics.ground_penetration(on_floor) == pytest.approx(0.0, abs=1e-9)
    sunk = on_floor.copy()
    sunk[5:, :, 1] -= 0.1  # half the frames 10 cm under the floor
    assert metrics.ground_penetration(sunk) == pytest.approx(0.05)


def test_jitter_is_zero_for_steady_motion_and_grows_with_noise():
    steady = standing(30) + (np.arange(30) * 0.05)[:, None, None] * np.array([0.0, 0.0, 1.0])
    assert metrics.jitter(steady, FPS) == pytest.approx(0.0, abs=1e-6)
    shaky = steady.copy()
    shaky[:, 20, 0] += 0.001 * (-1.0) ** np.arange(30)  # the left wrist flickers by 1 mm
    # the third difference of an alternating +-e signal is 8e; one joint of 22
    assert metrics.jitter(shaky, FPS) == pytest.approx(8 * 0.001 * FPS**3 / 22, rel=1e-6)


def test_bad_joint_arrays_are_refused():
    with pytest.raises(ValueError, match="frames, 22, 3"):
        metrics.foot_skating_ratio(np.zeros((10, 22)), FPS)
    with pytest.raises(ValueError, match="at least 4 frames"):
        metrics.jitter(standing(3), FPS)
