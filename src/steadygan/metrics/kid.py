"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs").

KID is the unbiased estimate of the squared maximum mean discrepancy (MMD^2) between two
feature sets under the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
random subsets. Unlike FID its estimator is unbiased, so its expected value does not depend
on the number of samples, and two samples of one distribution score 0 on average (single
estimates can be negative).
"""

from __future__ import annotations

import numpy as np
import torch

from .fid import as_float64


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for every pair of rows, d the feature dimension."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Unbiased MMD^2 of two sets (sizes m, n >= 2) under the polynomial kernel.

    Within-set sums leave out the diagonal (i == j), which is what removes the bias:
    sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (n(n-1)) - 2 mean k(x_i, y_j).
    """
    x, y = as_float64(x), as_float64(y)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs at least 2 samples per set (got {m} and {n})")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * kxy.mean())


def canonical_order(x: np.ndarray) -> np.ndarray:
    """The rows of x in an order that does not depend on the order they came in.

    The random subsets below index into this order, so KID is a function of the two
    *sets* and the seed. The primary key is the row sum, a continuous function of the
    features: rounding-level differences (e.g. from another batch size) can only swap
    neighbours with nearly equal sums instead of reshuffling everything, as an order on
    raw bytes would. Exact ties (duplicate sums) are broken by the row bytes.
    """
    x = np.ascontiguousarray(x)
    by_bytes = np.argsort(x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel(), kind="stable")
    order = by_bytes[np.argsort(x.sum(axis=1)[by_bytes], kind="stable")]
    return x[order]


def kid(features_a: np.ndarray | torch.Tensor, features_b: np.ndarray | torch.Tensor,
        n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of unbiased MMD^2 over ``n_subsets`` random subsets.

    Each subset draws ``subset_size`` samples without replacement from each set (clamped
    to that set's size), from a generator seeded by ``seed``; the global RNGs are not
    touched. The standard deviation is over subsets (ddof=0, as commonly reported); it
    describes the spread of one subset's estimate, not the error of the mean.
    """
    if n_subsets < 1 or subset_size < 2:
        raise ValueError(f"need n_subsets >= 1 and subset_size >= 2 (got {n_subsets}, {subset_size})")
    a, b = canonical_order(as_float64(features_a)), canonical_order(as_float64(features_b))
    size_a, size_b = min(subset_size, len(a)), min(subset_size, len(b))
    rng = np.random.default_rng(seed)
    estimates = np.empty(n_subsets)
    for i in range(n_subsets):
        ia = rng.choice(len(a), size_a, replace=False)
        ib = rng.choice(len(b), size_b, replace=False)
        estimates[i] = mmd2_unbiased(a[ia], b[ib])
    return float(estimates.mean()), float(estimates.std())
