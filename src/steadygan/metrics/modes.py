"""Mode-coverage metrics: 2-D Gaussian mixtures and Stacked-MNIST.

2-D mixtures (ring of 8, grid of 25) follow the VEEGAN protocol (Srivastava et al. 2017)
with PacGAN's additional KL (Lin et al. 2018): draw 2,500 samples; a sample is *high
quality* when it lies within 3 standard deviations of its nearest mode; a mode is
*recovered* when at least one high-quality sample is assigned to it; the KL compares the
histogram of high-quality samples over modes with the uniform distribution.

Stacked-MNIST (Metz et al. 2017; Srivastava et al. 2017): each of 3 channels holds an
independent random MNIST digit, giving 1,000 modes; a pretrained digit classifier labels
each channel of a generated image, and one counts the modes hit and the KL of the mode
histogram to uniform.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch


def _kl_to_uniform(counts: torch.Tensor, n_modes: int) -> float:
    """KL(p || U) = sum_i p_i log(p_i * K) with 0 log 0 = 0; NaN when there is nothing to count."""
    total = counts.sum()
    if total == 0:
        return math.nan
    p = counts[counts > 0].double() / total
    return float((p * (p * n_modes).log()).sum())


def mode_metrics(points: torch.Tensor | np.ndarray, modes: torch.Tensor | np.ndarray, std: float) -> dict[str, float]:
    """Mode coverage of 2-D ``points`` for a mixture with ``modes`` (K, 2) and isotropic ``std``.

    Returns ``modes_recovered`` (count out of K), ``high_quality_fraction`` (share of all
    points within 3 std of their nearest mode) and ``kl_to_uniform`` = KL(q || U_K), q the
    histogram over modes of the high-quality points only. Points far from every mode say
    nothing about which modes the generator covers, so they are left out of q (their
    share is what high_quality_fraction reports); the direction KL(generated || uniform)
    is PacGAN's "reverse KL", finite even when modes are missing (one mode only: log K).
    NaN when no point is high quality.
    """
    points = torch.as_tensor(points, dtype=torch.float64)
    modes = torch.as_tensor(modes, dtype=torch.float64)
    if points.ndim != 2 or points.shape[1] != modes.shape[1]:
        raise ValueError(f"points must be (N, {modes.shape[1]}) (got {tuple(points.shape)})")
    # Exact differences (not the |a|^2 + |b|^2 - 2ab form): the 3-std threshold is sharp.
    dist = torch.cdist(points, modes, compute_mode="donot_use_mm_for_euclid_dist")
    nearest_dist, nearest = dist.min(1)
    hq = nearest_dist <= 3.0 * std
    counts = torch.bincount(nearest[hq], minlength=len(modes))
    return {
        "modes_recovered": int((counts > 0).sum()),
        "high_quality_fraction": float(hq.double().mean()) if len(points) else math.nan,
        "kl_to_uniform": _kl_to_uniform(counts, len(modes)),
    }


def predict_triples(classify: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """(N, 3) digits: ``classify`` (single-channel images -> class indices) on each channel."""
    return torch.stack([torch.as_tensor(classify(images[:, c:c + 1])) for c in range(3)], 1)


def stacked_mode_metrics(predicted_triples: torch.Tensor | np.ndarray, n_modes: int = 1000) -> dict[str, float]:
    """Modes hit and KL(generated mode histogram || uniform over ``n_modes``).

    ``predicted_triples`` is (N, 3) digits per channel or (N,) codes 100*a + 10*b + c.
    """
    t = torch.as_tensor(predicted_triples).long()
    codes = t[:, 0] * 100 + t[:, 1] * 10 + t[:, 2] if t.ndim == 2 else t
    if len(codes) and (codes.min() < 0 or codes.max() >= n_modes):
        raise ValueError(f"mode codes must lie in [0, {n_modes})")
    counts = torch.bincount(codes, minlength=n_modes)
    return {"modes": int((counts > 0).sum()), "kl_to_uniform": _kl_to_uniform(counts, n_modes)}
