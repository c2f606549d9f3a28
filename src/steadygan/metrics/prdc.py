"""k-nearest-neighbour fidelity/diversity metrics on feature sets.

- Improved precision and recall (Kynkäänniemi et al. 2019, k=3): each sample gets a ball
  reaching its k-th nearest neighbour within its own set. Precision is the fraction of
  generated samples inside the union of the real balls; recall is the fraction of real
  samples inside the union of the generated balls.
- Density and coverage (Naeem et al. 2020, k=5), both from real balls only, which makes
  them robust to generated outliers: density = (1 / kM) * sum over generated samples of the
  number of real balls containing it; coverage = fraction of real balls that contain at
  least one generated sample.

Balls are closed (distance <= radius), as in the papers' definitions. Distances are
Euclidean, computed in float64 in row chunks, so memory grows as chunk_size x N instead of
N x M (10k x 10k float64 would be 800 MB).
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_CHUNK = 1024


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if t.ndim != 2:
        raise ValueError(f"features must be a (N, D) array (got shape {tuple(t.shape)})")
    return t


def _sq_dists(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    """Squared distances between rows of a and b via |a|^2 + |b|^2 - 2 a.b, clamped at 0."""
    d = (a * a).sum(1, keepdim=True) + b_sq.unsqueeze(0) - 2.0 * (a @ b.T)
    return d.clamp_min_(0.0)


def kth_neighbour_sq_radii(x: np.ndarray | torch.Tensor, ks: tuple[int, ...] = (3,),
                           chunk_size: int = DEFAULT_CHUNK) -> dict[int, torch.Tensor]:
    """For each k in ``ks``: squared distance from every row to its k-th nearest other row."""
    x = _as_tensor(x)
    kmax = max(ks)
    if len(x) <= kmax:
        raise ValueError(f"k={kmax} nearest neighbours need more than {kmax} samples (got {len(x)})")
    x_sq = (x * x).sum(1)
    out = {k: torch.empty(len(x), dtype=torch.float64) for k in ks}
    for start in range(0, len(x), chunk_size):
        d = _sq_dists(x[start:start + chunk_size], x, x_sq)
        rows = torch.arange(len(d))
        d[rows, rows + start] = float("inf")  # a sample is not its own neighbour
        nearest = d.topk(kmax, dim=1, largest=False).values  # ascending
        for k in ks:
            out[k][start:start + len(d)] = nearest[:, k - 1]
    return out


def prdc(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, k_pr: int = 3, k_dc: int = 5,
         chunk_size: int = DEFAULT_CHUNK) -> dict[str, float]:
    """Precision, recall (k=k_pr) and density, coverage (k=k_dc) of ``fake`` against ``real``."""
    real, fake = _as_tensor(real), _as_tensor(fake)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}")
    real_r = kth_neighbour_sq_radii(real, tuple({k_pr, k_dc}), chunk_size)
    fake_r = kth_neighbour_sq_radii(fake, (k_pr,), chunk_size)[k_pr]
    real_sq = (real * real).sum(1)
    in_precision = torch.zeros(len(fake), dtype=torch.bool)
    in_recall = torch.zeros(len(real), dtype=torch.bool)
    density_count = torch.zeros((), dtype=torch.float64)
    nearest_fake = torch.full((len(real),), float("inf"), dtype=torch.float64)
    # One pass over (fake chunk x all real) distances serves all four metrics.
    for start in range(0, len(fake), chunk_size):
        d = _sq_dists(fake[start:start + chunk_size], real, real_sq)  # (chunk, n_real)
        in_precision[start:start + len(d)] = (d <= real_r[k_pr]).any(1)
        in_recall |= (d <= fake_r[start:start + len(d), None]).any(0)
        density_count += (d <= real_r[k_dc]).sum()
        nearest_fake = torch.minimum(nearest_fake, d.min(0).values)
    return {
        "precision": float(in_precision.double().mean()),
        "recall": float(in_recall.double().mean()),
        "density": float(density_count / (k_dc * len(fake))),
        "coverage": float((nearest_fake <= real_r[k_dc]).double().mean()),
    }


def precision_recall(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, k: int = 3,
                     chunk_size: int = DEFAULT_CHUNK) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019)."""
    out = prdc(real, fake, k_pr=k, k_dc=k, chunk_size=chunk_size)
    return {"precision": out["precision"], "recall": out["recall"]}


def density_coverage(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, k: int = 5,
                     chunk_size: int = DEFAULT_CHUNK) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020)."""
    out = prdc(real, fake, k_pr=k, k_dc=k, chunk_size=chunk_size)
    return {"density": out["density"], "coverage": out["coverage"]}
