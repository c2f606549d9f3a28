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


def test_error_messages_and_boundaries():
    with pytest.raises(ValueError, match=r"at least 2 samples per set \(got 1 and 4\)"):
        mmd2_unbiased(np.zeros((1, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"at least 2 samples per set \(got 4 and 1\)"):
        mmd2_unbiased(np.zeros((4, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="feature dimensions differ: 3 vs 2"):
        mmd2_unbiased(np.zeros((4, 3)), np.zeros((4, 2)))
    assert np.isfinite(mmd2_unbiased(np.arange(4.0).reshape(2, 2), np.arange(4.0).reshape(2, 2) + 1))  # 2 is enough
    with pytest.raises(ValueError, match=r"need n_subsets >= 1 and subset_size >= 2 \(got 0, 5\)"):
        kid(np.zeros((4, 2)), np.zeros((4, 2)), 0, 5)
    with pytest.raises(ValueError, match=r"got 3, 1\)"):
        kid(np.zeros((4, 2)), np.zeros((4, 2)), 3, 1)
    a, b = np.random.default_rng(0).normal(size=(6, 2)), np.random.default_rng(1).normal(size=(6, 2))
    assert np.isfinite(kid(a, b, 2, 2)[0])


@pytest.mark.slow
def test_defaults_are_the_published_protocol():
    """100 subsets of 1000 samples, seed 0 (Binkowski et al. 2018 / torch-fidelity)."""
    g = np.random.default_rng(4)
    a, b = g.normal(size=(1005, 2)), g.normal(size=(1003, 2)) + 0.1  # more than 1000: subsets are proper
    assert kid(a, b) == kid(a, b, 100, 1000, 0)


def test_rows_with_equal_sums_are_ordered_by_their_bytes():
    """Many rows share a sum; the subsets (and KID) must not depend on the input order."""
    g = np.random.default_rng(5)
    base = g.integers(0, 4, size=(300, 2)).astype(np.float64)
    a = np.concatenate([base, base[:, ::-1]])  # pairs with equal sums, different bytes
    b = g.normal(size=(200, 2))
    perm = g.permutation(len(a))
    assert kid(a, b, 5, 50, 0) == kid(a[perm], b, 5, 50, 0)
