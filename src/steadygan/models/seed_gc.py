"""The networks of the GC-GAN document (section 4), made consistent for 28, 32 and 64 px.

Generator: Dense 128 -> 1024 -> 1024 (LeakyReLU 0.2, then BatchNorm, as written), Dense to
a 4x4x512 map, then stride-2 transposed convolutions (ReLU, then BatchNorm) to the image,
tanh out. The document lists three such convolutions, which reach 32 px, not the 64 px it
trains on; we use the number the resolution needs: 4->8->16->32 (32 px), one more
256->128 layer for 64 px, and 4->7->14->28 for 28 px (the first with a 3x3 kernel).

Discriminator: three stride-2 4x4 convolutions (64, 128, 256 channels; LeakyReLU 0.2, then
BatchNorm) and one dense unit. The document ends in a sigmoid; here the unit outputs a
logit and the loss applies the sigmoid (numerically stable, same model).

``width`` scales every layer: 64 (the default) is the document's sizes; 32 halves each layer
(D 32/64/128 channels, G dense 64 -> 512 -> 512, map 256 channels), for comparisons at 64 px
where the document's networks cost about a second per step on 2 CPU cores.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import ConfigError
from .layers import dcgan_init_, flatten_features, norm1d, norm2d

RESOLUTIONS = (28, 32, 64)


def _check(resolution: int) -> None:
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"seed-gc supports resolutions {RESOLUTIONS}; got {resolution}")


DOCUMENT_WIDTH = 64  # the width at which every layer has the document's size


class SeedGcGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, resolution: int, norm: str = "batch",
                 width: int = DOCUMENT_WIDTH) -> None:
        super().__init__()
        _check(resolution)
        self.z_dim = z_dim

        def w(n: int) -> int:  # a document layer size at this width
            return max(1, n * width // DOCUMENT_WIDTH)

        self.map_channels = w(512)
        dense: list[nn.Module] = []
        for a, b in [(z_dim, w(128)), (w(128), w(1024)), (w(1024), w(1024))]:
            dense += [nn.Linear(a, b), nn.LeakyReLU(0.2, inplace=True), norm1d(norm, b)]
        dense += [nn.Linear(w(1024), 4 * 4 * w(512), bias=False)]
        self.dense = nn.Sequential(*dense)
        if resolution == 28:
            plan = [(w(512), w(256), 3), (w(256), w(256), 4), (w(256), channels, 4)]
        elif resolution == 32:
            plan = [(w(512), w(256), 4), (w(256), w(256), 4), (w(256), channels, 4)]
        else:
            plan = [(w(512), w(256), 4), (w(256), w(256), 4), (w(256), w(128), 4), (w(128), channels, 4)]
        convs: list[nn.Module] = []
        for i, (a, b, kernel) in enumerate(plan):
            convs.append(nn.ConvTranspose2d(a, b, kernel, 2, 1))
            if i < len(plan) - 1:
                convs += [nn.ReLU(inplace=True), norm2d(norm, b)]
        convs.append(nn.Tanh())
        self.convs = nn.Sequential(*convs)
        dcgan_init_(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.convs(self.dense(z).view(-1, self.map_channels, 4, 4))


class SeedGcDiscriminator(nn.Module):
    def __init__(self, channels: int, resolution: int, norm: str = "batch", width: int = DOCUMENT_WIDTH) -> None:
        super().__init__()
        _check(resolution)
        layers: list[nn.Module] = []
        size, ch = resolution, channels
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(ch, out, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True), norm2d(norm, out)]
            size, ch = (size + 2 - 4) // 2 + 1, out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch * size * size, 1)
        dcgan_init_(self)

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features (N, F); the projection head of a conditional D reads them."""
        return flatten_features(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x)).squeeze(1)
