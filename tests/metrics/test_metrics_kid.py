"""KID: brute-force unbiased MMD^2, behaviour on equal and different distributions."""

from __future__ import annotations

import numpy as np
import pytest

from steadygan.metrics import kid, mmd2_unbiased


def _brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]

    def k(a, b):
        return (sum(float(ai) * float(bi) for ai, bi in zip(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_matches_brute_force_with_one_subset_covering_everything():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(7, 4)) + 0.4
    expected = _brute_force_mmd2(x, y)
    assert mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-12)
    mean, std = kid(x, y, n_subsets=1, subset_size=100)  # clamped to 6 and 7: every sample
    assert mean == pytest.approx(expected, rel=1e-12)
    assert std == 0.0
    # Several subsets that each hold everything agree exactly.
    mean3, std3 = kid(x, y, n_subsets=3, subset_size=100)
    assert mean3 == pytest.approx(expected, rel=1e-12) and std3 == pytest.approx(0.0, abs=1e-15)


def test_same_distribution_scores_zero_within_its_spread():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
    mean, std = kid(a, b, n_subsets=50, subset_size=200, seed=3)
    assert std > 0
    assert abs(mean) < 3 * std


def test_biased_estimate_would_be_detected():
    # The check above can fail: the biased (V-statistic) estimate, which keeps the
    # diagonal k(x, x) terms, sits far outside 3 std on the same data.
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
    _, std = kid(a, b, n_subsets=50, subset_size=200, seed=3)
    x, y = a[:200], b[:200]
    k = lambda u, v: (u @ v.T / 16 + 1) ** 3  # noqa: E731
    biased = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
    assert biased > 3 * std


def test_different_distributions_score_clearly_positive():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16)) * 1.3 + 0.3
    mean, std = kid(a, b, n_subsets=50, subset_size=200, seed=0)
    # The mirror image of the check above: 0 is more than 3 spreads below the mean, so
    # even a single subset tells the two distributions apart.
    assert mean > 3 * std > 0


def test_subset_mean_estimates_the_full_sample_statistic():
    # Averaged over random subsets, each within-set and cross term has the full-sample
    # mean as its expectation, so the subset mean is an unbiased estimate of the full
    # U-statistic; subsets are drawn independently, so its standard error is std / sqrt(S).
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(1500, 16)), rng.normal(size=(1500, 16)) * 1.2 + 0.2
    n_subsets = 64
    mean, std = kid(a, b, n_subsets=n_subsets, subset_size=150, seed=5)
    assert abs(mean - mmd2_unbiased(a, b)) < 4 * std / np.sqrt(n_subsets)


def test_deterministic_given_seed_and_independent_of_order():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(500, 8)), rng.normal(size=(400, 8)) + 0.1
    first = kid(a, b, n_subsets=20, subset_size=100, seed=7)
    assert kid(a, b, n_subsets=20, subset_size=100, seed=7) == first
    assert kid(a, b, n_subsets=20, subset_size=100, seed=8) != first
    shuffled = kid(a[rng.permutation(500)], b[rng.permutation(400)], n_subsets=20, subset_size=100, seed=7)
    assert shuffled == first


def test_leaves_global_rng_alone():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    kid(np.ones((5, 2)) * np.arange(5)[:, None], np.zeros((5, 2)) + np.arange(5)[:, None] * 0.5, 3, 3, seed=1)
    assert np.array_equal(np.random.get_state()[1], before)


def test_rejects_too_few_samples():
    with pytest.raises(ValueError):
        mmd2_unbiased(np.zeros((1, 3)), np.zeros((4, 3)))
