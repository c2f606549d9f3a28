"""The 2-D mixture networks of the PacGAN experiments (Lin et al. 2018, section 5 and their
released configuration), at packing 1: the pair against which PacGAN's grid25 baseline
(a plain GAN covering 25 modes with 94.8% of samples near one) was measured.

* G: 4 hidden layers of 400 units, each a bias-free linear map, BatchNorm and ReLU, then a
  linear output.
* D: 3 maxout layers of 200 units with 5 pieces each (Goodfellow et al. 2013), then a
  linear output.
* Weights drawn from N(0, 0.02), biases 0.
"""

from __future__ import annotations

from torch import Tensor, nn

from .layers import norm1d

INIT_STD = 0.02


class Maxout(nn.Module):
    """``max_k (W_k x + b_k)`` over ``pieces`` affine maps: one Linear of out x pieces outputs."""

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(len(x), self.out_features, self.pieces).amax(dim=2)


def _init_(module: nn.Module) -> None:
    # Not layers.dcgan_init_: that also draws BatchNorm gains from N(1, 0.02); PacGAN's keep 1.
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class PacganMlpGenerator(nn.Module):
    def __init__(self, z_dim: int, out_dim: int, width: int = 400, depth: int = 4, norm: str = "batch") -> None:
        super().__init__()
        self.z_dim = z_dim
        layers: list[nn.Module] = []
        for i in range(depth):
            # Bias-free hidden layers, as in the reference: BatchNorm's shift takes the bias's place.
            layers += [nn.Linear(z_dim if i == 0 else width, width, bias=norm == "none"), norm1d(norm, width),
                       nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(width, out_dim))
        _init_(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class PacganMlpDiscriminator(nn.Module):
    def __init__(self, in_dim: int, width: int = 200, depth: int = 3, pieces: int = 5, norm: str = "none") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [Maxout(in_dim if i == 0 else width, width, pieces), norm1d(norm, width)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)
        _init_(self)

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features (N, F); the projection head of a conditional D reads them."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)


__all__ = ["Maxout", "PacganMlpGenerator", "PacganMlpDiscriminator"]
