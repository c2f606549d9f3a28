"""Networks for image-to-image translation (pix2pix, Isola et al. 2017), sized for small images.

The condition is an image: ``G(z, a) -> b`` and ``D(b, a) -> score map``, the pair convention
with an image where a class label would be (``core.pair.call``). Input-gradient penalties
differentiate D with respect to ``b`` with ``a`` held fixed (``core.pair.bind``), as they hold
a class label fixed.

- :class:`UNetGenerator`: an encoder of stride-2 convolutions down to a 4x4 bottleneck and a
  decoder of stride-2 transposed convolutions back up, each decoder level joined to the encoder
  level of its size (the skips carry the input's layout to the output). 32 px has 3 levels and
  64 px 4; 28 px is reflect-padded to 32 and the output cropped back. The noise ``z`` enters as
  a 4x4 map beside the bottleneck; dropout (p = 0.5) in the two innermost decoder levels is the
  paper's other source of noise, active in training only.
- :class:`PatchDiscriminator`: pix2pix's PatchGAN, a fully convolutional D on ``(a, b)`` stacked
  by channel, scoring each receptive field ("patch") of the output. ``depth`` strided layers
  give receptive fields of 16, 34 and 70 px for 1, 2 and 3 (the paper's default is the 70-px
  one, larger than a 28- or 64-px image); the default is the largest below the image's size.
  It returns the map ``(N, h, w)``: the losses average over every element, i.e. each patch's
  loss averaged (the paper's), and input-gradient penalties take the gradient of each sample's
  *mean* patch score, so a penalty's strength means what it means for a one-logit D.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .layers import dcgan_init_, norm2d

BOTTLENECK = 4   # the U-Net's innermost map, in pixels
MAX_WIDTH_MULT = 8
RECEPTIVE_FIELDS = {1: 16, 2: 34, 3: 70}  # PatchGAN strided layers -> receptive field (px)


def unet_levels(resolution: int) -> tuple[int, int]:
    """(padded size, encoder levels): 28 -> (32, 3), 32 -> (32, 3), 64 -> (64, 4)."""
    padded = 32 if resolution == 28 else resolution
    levels = 0
    size = padded
    while size > BOTTLENECK and size % 2 == 0:
        size, levels = size // 2, levels + 1
    if size != BOTTLENECK or levels < 3:
        raise ConfigError(f"pix2pix translates 28-px images or 2^k-px ones from 32 up (32, 64, 128, ...); "
                          f"got {resolution}")
    return padded, levels


class UNetGenerator(nn.Module):
    """``G(z, a)``: a U-Net from the condition image ``a`` (``in_channels``) to ``b``
    (``out_channels``), in [-1, 1]. ``width``: the first level's channels (doubling per
    level, at most 8x); ``dropout``: pix2pix's dropout in the innermost decoder levels."""

    def __init__(self, z_dim: int, in_channels: int, out_channels: int, resolution: int, width: int = 64,
                 norm: str = "batch", dropout: bool = True) -> None:
        super().__init__()
        self.resolution, self.z_dim = resolution, z_dim
        self.padded, levels = unet_levels(resolution)
        chans = [width * min(2 ** i, MAX_WIDTH_MULT) for i in range(levels)]
        self.down = nn.ModuleList()
        prev = in_channels
        for i, ch in enumerate(chans):  # no normalisation on the first level (pix2pix)
            self.down.append(nn.Sequential(nn.Conv2d(prev, ch, 4, 2, 1), norm2d("none" if i == 0 else norm, ch),
                                           nn.LeakyReLU(0.2)))
            prev = ch
        self.z_channels = width
        self.project_z = nn.Linear(z_dim, self.z_channels * BOTTLENECK * BOTTLENECK)
        self.up = nn.ModuleList()
        prev = chans[-1] + self.z_channels
        for i in reversed(range(levels - 1)):  # to the size of encoder level i, then joined to it
            drop = [nn.Dropout(0.5)] if dropout and i >= levels - 3 else []
            self.up.append(nn.Sequential(nn.ConvTranspose2d(prev, chans[i], 4, 2, 1), norm2d(norm, chans[i]),
                                         *drop, nn.ReLU()))
            prev = 2 * chans[i]
        self.out = nn.Sequential(nn.ConvTranspose2d(prev, out_channels, 4, 2, 1), nn.Tanh())
        dcgan_init_(self)

    def forward(self, z: Tensor, a: Tensor) -> Tensor:
        pad = (self.padded - self.resolution) // 2
        h = F.pad(a, (pad,) * 4, mode="reflect") if pad else a
        skips = []
        for level in self.down:
            h = level(h)
            skips.append(h)
        noise = self.project_z(z).view(-1, self.z_channels, BOTTLENECK, BOTTLENECK)
        h = torch.cat([h, noise], 1)
        for level, skip in zip(self.up, reversed(skips[:-1])):
            h = torch.cat([level(h), skip], 1)
        b = self.out(h)
        return b[:, :, pad:pad + self.resolution, pad:pad + self.resolution] if pad else b


def default_patch_depth(resolution: int) -> int:
    """The most strided layers whose receptive field is smaller than the image."""
    fitting = [d for d, field in RECEPTIVE_FIELDS.items() if field < resolution]
    if not fitting:
        raise ConfigError(f"no PatchGAN fits a {resolution}-px image (the smallest sees 16 px)")
    return max(fitting)


class PatchDiscriminator(nn.Module):
    """``D(b, a)``: pix2pix's PatchGAN on the channel-stacked pair, one logit per patch,
    returned as ``(N, h, w)`` (no sigmoid: the loss owns it)."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, width: int = 64,
                 depth: int | None = None, norm: str = "instance") -> None:
        super().__init__()
        depth = default_patch_depth(resolution) if depth is None else depth
        if depth not in RECEPTIVE_FIELDS:
            raise ConfigError(f"the PatchGAN's depth must be one of {sorted(RECEPTIVE_FIELDS)} (got {depth})")
        if RECEPTIVE_FIELDS[depth] >= resolution:
            raise ConfigError(f"a PatchGAN of depth {depth} sees {RECEPTIVE_FIELDS[depth]} px, not less than the "
                              f"{resolution}-px image: every patch would be the whole image; use a depth of at most "
                              f"{default_patch_depth(resolution)}")
        self.receptive_field = RECEPTIVE_FIELDS[depth]
        layers: list[nn.Module] = [nn.Conv2d(in_channels + out_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = width
        for _ in range(depth - 1):
            nxt = min(ch * 2, width * MAX_WIDTH_MULT)
            layers += [nn.Conv2d(ch, nxt, 4, 2, 1), norm2d(norm, nxt), nn.LeakyReLU(0.2)]
            ch = nxt
        nxt = min(ch * 2, width * MAX_WIDTH_MULT)
        layers += [nn.Conv2d(ch, nxt, 4, 1, 1), norm2d(norm, nxt), nn.LeakyReLU(0.2), nn.Conv2d(nxt, 1, 4, 1, 1)]
        self.body = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, b: Tensor, a: Tensor) -> Tensor:
        return self.body(torch.cat([a, b], 1)).squeeze(1)
