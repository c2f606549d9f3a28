"""Fréchet distance between Gaussians fitted to two feature sets (FID: Heusel et al. 2017).

FID = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2}).

The usual implementation calls ``scipy.linalg.sqrtm(S1 @ S2)``: S1 S2 is not symmetric, so
the result can come back complex (tiny imaginary parts that must be thrown away) and the
iteration is unreliable when a covariance is singular, which it always is when there are
fewer samples than feature dimensions. Here only the trace is needed, and

    tr((S1 S2)^{1/2}) = tr((S1^{1/2} S2 S1^{1/2})^{1/2}),

because S1 S2 = S1^{1/2} (S1^{1/2} S2) and (S1^{1/2} S2) S1^{1/2} share their eigenvalues.
The right-hand matrix is symmetric positive semi-definite, so two symmetric eigen-
decompositions (``eigh``, eigenvalues clamped at 0) give a real answer for any pair of
covariances, full rank or not.
"""

from __future__ import annotations

import numpy as np
import torch


def as_float64(features: np.ndarray | torch.Tensor) -> np.ndarray:
    """A (N, D) float64 numpy array (a copy only when needed)."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be a (N, D) array (got shape {x.shape})")
    return x


def gaussian_stats(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64."""
    x = as_float64(features)
    if len(x) < 2:
        raise ValueError(f"need at least 2 samples to estimate a covariance (got {len(x)})")
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (len(x) - 1)
    return mu, sigma


def _clamped_eigenvalues(values: np.ndarray, dim: int) -> np.ndarray:
    """Eigenvalues below the rounding level (dim * eps * largest) set to 0.

    A singular covariance has eigenvalues that are exactly 0 but come out as +-1e-16;
    their square roots (1e-8) would add up to a sqrt(eps)-sized error in the trace.
    """
    tol = dim * np.finfo(np.float64).eps * float(np.abs(values).max(initial=0.0))
    return np.where(values > tol, values, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix; negative rounding noise is clamped."""
    sym = (matrix + matrix.T) / 2  # remove asymmetry left by floating-point products
    values, vectors = np.linalg.eigh(sym)
    return (vectors * np.sqrt(_clamped_eigenvalues(values, len(sym)))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((S1 S2)^{1/2}) for symmetric PSD S1, S2, via the symmetric form (see module doc)."""
    root1 = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    inner = root1 @ np.asarray(sigma2, dtype=np.float64) @ root1
    values = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(_clamped_eigenvalues(values, len(inner))).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2)."""
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    # The true value is >= 0; identical inputs can come out at -1e-12 from rounding.
    return max(float(value), 0.0)


def fid(features_a: np.ndarray | torch.Tensor, features_b: np.ndarray | torch.Tensor) -> float:
    """FID between two (N, D) feature sets (any N >= 2 each; sample order does not matter)."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))
