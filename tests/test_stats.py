"""Bootstrap over test videos: hand-made cases with known answers, and agreement with the LLP metrics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from avvp.errors import AvvpError
from avvp.evaluation import stats
from avvp.evaluation.metrics import llp_scores, video_scores
from avvp.evaluation.metrics import COLUMNS
from avvp.evaluation.stats import VideoScores, bootstrap_ci, paired_bootstrap, video_matrix


def files(n: int, prefix: str = "vid") -> np.ndarray:
    return np.array([f"{prefix}{i:04d}_0_10" for i in range(n)])


def runs(scores, name: str = "row", filenames=None) -> VideoScores:
    scores = np.asarray(scores, dtype=np.float64)
    return VideoScores(scores, files(scores.shape[1]) if filenames is None else filenames, name)


# ------------------------------------------------------------------------------ per-video -> dataset

def test_dataset_numbers_rebuilt_from_per_video_scores_equal_llp_scores():
    rng = np.random.default_rng(1)
    n = 60
    gt_a, gt_v = ((rng.random((n, 25, 10)) < 0.08).astype(np.uint8) for _ in range(2))
    per_seed, numbers = [], []
    for _ in range(3):   # three "seeds": three different predictions of the same videos
        pred_a, pred_v = ((rng.random((n, 25, 10)) < 0.1).astype(np.uint8) for _ in range(2))
        per_seed.append(video_matrix(video_scores(pred_a, pred_v, gt_a, gt_v)))
        scores = llp_scores(pred_a, pred_v, gt_a, gt_v)
        numbers.append([scores[level][key] for level, key in (c.split(".") for c in COLUMNS)])
    interval = bootstrap_ci(np.stack(per_seed), n_resamples=200)
    # The estimate is the tables' mean over seeds of the ten numbers (Type@AV included: it is linear).
    np.testing.assert_allclose(interval.estimate, np.mean(numbers, axis=0), rtol=0, atol=1e-9)
    assert (interval.low <= interval.estimate).all() and (interval.estimate <= interval.high).all()


# ------------------------------------------------------------------------------------- intervals

def test_zero_width_interval_when_every_video_scores_the_same():
    interval = bootstrap_ci(np.full((3, 50, 10), 0.7))
    np.testing.assert_array_equal(interval.low, interval.high)
    np.testing.assert_allclose(interval.low, 70.0, rtol=0, atol=1e-12)


def test_seeds_are_averaged_per_video_not_pooled_as_more_videos():
    # Seed 0 scores 0.2 on every video and seed 1 scores 0.4: the dataset number is 30 on every resample.
    # Pooling the seeds as 100 videos would give a wide interval around 30 instead.
    scores = np.stack([np.full(50, 0.2), np.full(50, 0.4)])
    interval = bootstrap_ci(scores)
    assert isinstance(interval.low, float)
    assert interval.low == interval.high
    assert interval.estimate == pytest.approx(30.0, abs=1e-12)


def test_interval_contains_the_mean_with_the_width_of_a_mean_of_coin_flips():
    # 400 videos scoring 0 or 1, half each: the mean is 50 and its standard error 100 * 0.5 / 20 = 2.5,
    # so a 95% interval spans about 2 * 1.96 * 2.5 = 9.8 points.
    scores = np.tile([0.0, 1.0], 200)[None, :]
    interval = bootstrap_ci(scores, n_resamples=4000)
    assert interval.estimate == 50.0
    assert interval.low < 50.0 < interval.high
    assert 9.8 * 0.85 < interval.high - interval.low < 9.8 * 1.15


def test_all_metrics_at_once_match_one_metric_at_a_time():
    rng = np.random.default_rng(2)
    scores = rng.random((3, 80, 4))
    together = bootstrap_ci(scores, n_resamples=500, seed=5)
    for m in range(4):
        alone = bootstrap_ci(scores[:, :, m], n_resamples=500, seed=5)
        assert alone.low == pytest.approx(together.low[m], abs=1e-9)
        assert alone.high == pytest.approx(together.high[m], abs=1e-9)


def test_fixed_seed_is_deterministic_and_another_seed_differs():
    scores = np.random.default_rng(3).random((3, 100, 10))
    a, b = bootstrap_ci(scores, seed=0), bootstrap_ci(scores, seed=0)
    np.testing.assert_array_equal(a.low, b.low)
    np.testing.assert_array_equal(a.high, b.high)
    assert not np.array_equal(a.low, bootstrap_ci(scores, seed=1).low)


def test_resampling_in_blocks_draws_a_valid_bootstrap(monkeypatch):
    # Force many small blocks (7 resamples each, the last one partial): same answers where they are exact,
    # and an interval close to the one drawn in a single block.
    scores = np.random.default_rng(4).random((1, 300, 2))
    whole = bootstrap_ci(scores, n_resamples=3000)
    monkeypatch.setattr(stats, "BLOCK_CELLS", 300 * 7)
    blocked = bootstrap_ci(scores, n_resamples=3000)
    np.testing.assert_allclose(blocked.low, whole.low, atol=0.5)
    np.testing.assert_allclose(blocked.high, whole.high, atol=0.5)
    constant = bootstrap_ci(np.full((1, 300, 2), 0.25), n_resamples=3000)
    np.testing.assert_array_equal(constant.low, constant.high)


# ----------------------------------------------------------------------------------- paired test

def test_row_compared_with_itself_has_p_one_and_a_zero_interval():
    row = runs(np.random.default_rng(5).random((3, 200, 10)))
    result = paired_bootstrap(row, row)
    np.testing.assert_array_equal(result.p, 1.0)
    np.testing.assert_array_equal(result.diff, 0.0)
    np.testing.assert_array_equal(result.low, 0.0)
    np.testing.assert_array_equal(result.high, 0.0)


def test_same_gain_on_every_video_gives_a_zero_width_interval_and_the_smallest_p():
    # Sixteenths plus 1/8: every per-video difference is exactly 0.125 in floating point.
    base = np.random.default_rng(6).integers(0, 14, size=(3, 200)) / 16
    result = paired_bootstrap(runs(base + 0.125), runs(base, "base"), n_resamples=1000)
    assert result.low == result.high == result.diff == 12.5
    assert result.p == 1 / 1001


def test_clearly_better_row_is_significant_and_a_shuffled_equal_one_is_not():
    rng = np.random.default_rng(7)
    base = rng.random((3, 400))
    better = np.clip(base + 0.05 + rng.normal(0, 0.1, base.shape), 0, 1)
    shuffled = base[:, rng.permutation(400)]   # the same scores, on other videos: the same mean
    assert paired_bootstrap(runs(better), runs(base, "base")).p < 0.01
    result = paired_bootstrap(runs(shuffled), runs(base, "base"))
    assert result.p > 0.5
    assert result.low < 0 < result.high


def test_p_value_is_two_sided_and_agrees_with_a_t_test_on_many_videos():
    # 1,000 per-video differences with t = 2.2: the two-sided t-test gives p = 0.028, and the bootstrap
    # test, with its resampling error (~0.003 at 4,000 resamples), should agree closely, whichever the sign.
    z = np.random.default_rng(8).normal(size=1000)
    diff = z - z.mean() + 2.2 * z.std(ddof=1) / np.sqrt(z.size)
    expected = scipy_stats.ttest_1samp(diff, 0.0).pvalue
    zeros = np.zeros((1, z.size))
    for sign in (1, -1):
        p = paired_bootstrap(runs(sign * diff[None]), runs(zeros, "base"), n_resamples=4000).p
        assert p == pytest.approx(expected, abs=0.012)


def test_videos_are_matched_by_filename_not_by_position():
    rng = np.random.default_rng(9)
    row, base = rng.random((3, 120, 10)), rng.random((3, 120, 10))
    order = rng.permutation(120)
    in_order = paired_bootstrap(runs(row), runs(base, "base"))
    shuffled = paired_bootstrap(runs(row), runs(base[:, order], "base", files(120)[order]))
    np.testing.assert_allclose(shuffled.diff, in_order.diff, atol=1e-12)
    np.testing.assert_allclose(shuffled.low, in_order.low, atol=1e-12)
    np.testing.assert_array_equal(shuffled.p, in_order.p)


# ------------------------------------------------------------------------------------- bad input

def test_different_test_videos_are_an_error_naming_both_rows():
    row = runs(np.zeros((3, 10)), "MA* + Ours")
    other = runs(np.zeros((3, 10)), "MA*", np.array([*files(9), "elsewhere_0_10"]))
    with pytest.raises(AvvpError, match=r"MA\* \+ Ours vs MA\*: different test videos.*'vid0009_0_10'"):
        paired_bootstrap(row, other)
    with pytest.raises(AvvpError, match="different test videos"):
        paired_bootstrap(row, runs(np.zeros((3, 11)), "MA*"))


def test_repeated_video_and_filename_count_mismatch_are_errors():
    doubled = runs(np.zeros((1, 3)), "HAN", np.array(["a", "b", "a"]))
    with pytest.raises(AvvpError, match="HAN: video 'a' appears 2 times"):
        paired_bootstrap(doubled, doubled)
    short = runs(np.zeros((1, 3)), "HAN", np.array(["a", "b"]))
    with pytest.raises(AvvpError, match="HAN: 2 filenames for 3 videos"):
        paired_bootstrap(short, runs(np.zeros((1, 3)), "base"))


def test_bad_scores_are_one_line_errors():
    with pytest.raises(AvvpError, match="non-empty"):
        bootstrap_ci(np.zeros(10))
    scores = np.zeros((2, 5, 3))
    scores[1, 4, 2] = np.nan
    with pytest.raises(AvvpError, match=r"HAN: per-video score at .* \(1, 4, 2\) is not finite"):
        bootstrap_ci(VideoScores(scores, files(5), "HAN"))
    with pytest.raises(AvvpError, match="3 metrics per video"):
        paired_bootstrap(runs(np.zeros((1, 5, 3))), runs(np.zeros((1, 5, 2)), "base"))
