"""Fully connected pair for low-dimensional (2-D toy) data."""

from __future__ import annotations

from torch import Tensor, nn

from .layers import norm1d


def _stack(inp: int, width: int, depth: int, act: nn.Module, norm: str) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(inp if i == 0 else width, width), norm1d(norm, width), act]
    return layers


class MlpGenerator(nn.Module):
    def __init__(self, z_dim: int, out_dim: int, width: int = 128, depth: int = 3, norm: str = "none") -> None:
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(*_stack(z_dim, width, depth, nn.ReLU(), norm), nn.Linear(width, out_dim))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class MlpDiscriminator(nn.Module):
    def __init__(self, in_dim: int, width: int = 128, depth: int = 3, norm: str = "none") -> None:
        super().__init__()
        self.net = nn.Sequential(*_stack(in_dim, width, depth, nn.LeakyReLU(0.2), norm), nn.Linear(width, 1))

    @property
    def head(self) -> nn.Linear:
        return self.net[-1]

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features (N, F); the projection head of a conditional D reads them."""
        return self.net[:-1](x)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)
