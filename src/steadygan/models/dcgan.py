"""DCGAN-style convolutional pair (Radford et al. 2016) for any resolution 4 * 2^k or 7 * 2^k.

The generator starts from a base x base map (4 for 32/64 px, 7 for 28 px) and doubles it
with stride-2 transposed convolutions; the discriminator mirrors it. Channel counts come
from ``width`` and the data, never hard-coded.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import ConfigError
from .layers import dcgan_init_, flatten_features, norm2d, to_layout_of


def base_and_doublings(resolution: int) -> tuple[int, int]:
    """Split resolution = base * 2^k with base >= 4 as small as possible and k >= 2."""
    base, k = resolution, 0
    while base % 2 == 0 and base // 2 >= 4:
        base, k = base // 2, k + 1
    if k < 2 or base > 8:
        raise ConfigError(
            f"dcgan needs a resolution of the form base * 2^k with base in 4..8 and k >= 2 "
            f"(e.g. 28, 32, 64); got {resolution}"
        )
    return base, k


class DcganGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, resolution: int, width: int = 64, norm: str = "batch") -> None:
        super().__init__()
        base, k = base_and_doublings(resolution)
        ch = width * 2 ** (k - 1)
        self.z_dim, self.base, self.ch0 = z_dim, base, ch
        self.project = nn.Sequential(nn.Linear(z_dim, ch * base * base))
        self.project_act = nn.Sequential(norm2d(norm, ch), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), norm2d(norm, ch // 2), nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: Tensor) -> Tensor:
        x = self.project(z).view(-1, self.ch0, self.base, self.base)
        return self.body(self.project_act(to_layout_of(x, self.body[0].weight)))


class DcganDiscriminator(nn.Module):
    """Outputs one logit per sample (no sigmoid: the loss owns it)."""

    def __init__(self, channels: int, resolution: int, width: int = 64, norm: str = "none") -> None:
        super().__init__()
        base, k = base_and_doublings(resolution)
        ch = width
        # No normalisation on the first layer (DCGAN).
        layers: list[nn.Module] = [nn.Conv2d(channels, ch, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(k - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), norm2d(norm, ch * 2), nn.LeakyReLU(0.2, inplace=True)]
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch * base * base, 1)
        dcgan_init_(self)

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features (N, F); the projection head of a conditional D reads them."""
        return flatten_features(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x)).squeeze(1)
