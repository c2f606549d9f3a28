"""2-D Gaussian mixtures used to measure mode coverage (PacGAN / VEEGAN protocol)."""

from __future__ import annotations

import math

import torch


def ring8_modes(radius: float = 1.0) -> torch.Tensor:
    """Eight means evenly spaced on a circle of the given radius."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return (radius * torch.stack([angles.cos(), angles.sin()], 1)).float()


def grid25_modes() -> torch.Tensor:
    """Twenty-five means on the grid {-4, -2, 0, 2, 4}^2."""
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    return torch.cartesian_prod(axis, axis)


TOY_MIXTURES = {"ring8": (ring8_modes, 0.01), "grid25": (grid25_modes, 0.05)}


def sample_mixture(name: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n points from an equal-weight isotropic mixture, and the index of each point's mode."""
    make_modes, std = TOY_MIXTURES[name]
    modes = make_modes()
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(len(modes), (n,), generator=g)
    points = modes[which] + std * torch.randn(n, 2, generator=g)
    return points, which
