"""FID: closed forms, an independent sqrtm reference, and singular covariances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import linalg

from steadygan.metrics import fid, frechet_distance, gaussian_stats
from steadygan.metrics.fid import trace_sqrt_product


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_gaussian_stats_match_numpy_in_float64():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(50, 6))).float()
    mu, sigma = gaussian_stats(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    ref = x.double().numpy()
    np.testing.assert_allclose(mu, ref.mean(0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sigma, np.cov(ref, rowvar=False), rtol=1e-12, atol=1e-15)


def test_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 32)) @ rng.normal(size=(32, 32))
    mu, sigma = gaussian_stats(x)
    # tr((S S)^1/2) = tr(S): checks the unclamped core, not just the clamped result.
    assert trace_sqrt_product(sigma, sigma) == pytest.approx(np.trace(sigma), rel=1e-10)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-9 * np.trace(sigma))


def test_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(2)
    d = 10
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)


def test_closed_form_for_proportional_full_covariances():
    # S2 = c^2 S1  =>  tr((S1 S2)^1/2) = c tr(S1), so FID = |dmu|^2 + (1 - c)^2 tr(S1).
    rng = np.random.default_rng(3)
    s1, c = _random_spd(rng, 12), 1.7
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    expected = np.sum((mu1 - mu2) ** 2) + (1 - c) ** 2 * np.trace(s1)
    assert frechet_distance(mu1, s1, mu2, c * c * s1) == pytest.approx(expected, rel=1e-10)


def test_agrees_with_scipy_sqrtm_on_full_rank_data():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(400, 24))
    b = rng.normal(size=(350, 24)) @ rng.normal(size=(24, 24)) * 0.5 + 0.3
    mu1, s1 = gaussian_stats(a)
    mu2, s2 = gaussian_stats(b)
    covmean = linalg.sqrtm(s1 @ s2)
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real
    assert fid(a, b) == pytest.approx(reference, rel=1e-6)


def test_rank_deficient_covariances_give_the_nuclear_norm_answer():
    # 12 and 9 samples in 64 dims: both covariances are singular. With S1 = A^T A and
    # S2 = B^T B (A, B the scaled centred data), tr((S1 S2)^1/2) is the sum of the singular
    # values of A B^T: an independent route that needs no matrix square root at all.
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 64)), rng.normal(size=(9, 64)) + 0.2
    a = (x - x.mean(0)) / np.sqrt(len(x) - 1)
    b = (y - y.mean(0)) / np.sqrt(len(y) - 1)
    mu1, s1 = gaussian_stats(x)
    mu2, s2 = gaussian_stats(y)
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * nuclear
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning, no invalid-value warning
        value = fid(x, y)
    assert isinstance(value, float) and np.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-9)


def test_fid_ignores_sample_order():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(150, 8)) + 0.5
    perm = rng.permutation(len(b))
    assert fid(a, b[perm]) == pytest.approx(fid(a, b), rel=1e-12)


# --- closed from surviving mutants (benchmarks/mutation_module.py metrics.fid) -------------------

def test_float32_statistics_are_scored_in_float64():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 6)), rng.normal(0.3, 1.2, size=(40, 6))
    stats64 = [*gaussian_stats(a), *gaussian_stats(b)]
    stats32 = [s.astype(np.float32) for s in stats64]
    exact = frechet_distance(*[s.astype(np.float64) for s in stats32])  # the same numbers, widened first
    assert frechet_distance(*stats32) == exact  # widened first, then the same float64 operations
    s1, s2 = stats32[1], stats32[3]
    assert trace_sqrt_product(s1, s2) == trace_sqrt_product(s1.astype(np.float64), s2.astype(np.float64))


def test_fid_scales_with_the_square_of_tiny_features():
    # Eigenvalues near 1e-18: the clamp's tolerance must follow the largest eigenvalue, not 1.
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 4)), rng.normal(0.5, 2.0, size=(30, 4))
    assert fid(a * 1e-9, b * 1e-9) == pytest.approx(1e-18 * fid(a, b), rel=1e-6, abs=0)


def test_two_samples_are_enough_and_shape_errors_are_named():
    mu, sigma = gaussian_stats(np.array([[0.0, 1.0], [2.0, 3.0]]))
    assert mu.tolist() == [1.0, 2.0] and sigma.tolist() == [[2.0, 2.0], [2.0, 2.0]]
    with pytest.raises(ValueError) as exc:
        gaussian_stats(np.zeros((1, 3)))
    assert str(exc.value) == "need at least 2 samples to estimate a covariance (got 1)"
    with pytest.raises(ValueError) as exc:
        gaussian_stats(np.zeros(3))
    assert str(exc.value) == "features must be a (N, D) array (got shape (3,))"
    m, s = np.zeros(2), np.eye(2)
    for args in ((m, s, m, np.eye(3)), (m, s, np.zeros(3), s), (m, np.eye(3), m, np.eye(3))):
        with pytest.raises(ValueError) as exc:
            frechet_distance(*args)
        assert str(exc.value) == (f"shape mismatch: mu {args[0].shape} / {args[2].shape}, sigma {args[1].shape} / "
                                  f"{args[3].shape}")
