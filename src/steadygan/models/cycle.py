"""CycleGAN's networks (Zhu et al. 2017) as one generator/discriminator pair on joint samples.

Unpaired translation has two domains, A and B, two generators (G_AB: A -> B, G_BA: B -> A)
and two discriminators (D_A on domain A, D_B on domain B). Here a training sample is a
*joint* sample ``u = (a, b)``: an image of each domain stacked by channel, slot A first
(``data/unpaired.py`` pairs them at random; nothing in CycleGAN's losses couples the two
images of a sample). On it:

- :class:`CycleGenerator` ``G(z, u) = (G_BA(b), G_AB(a))``: each slot gets its domain's
  translation of the other slot's image, so a generated joint sample lines up with a real one
  slot by slot. Applied to its own output it gives ``(G_BA(G_AB(a)), G_AB(G_BA(b)))``, the
  cycle back to ``u`` (the ``cycle`` penalty); applied to the swapped sample ``(b, a)`` it gives
  ``(G_BA(a), G_AB(b))``, the identity mapping (the ``identity`` penalty).
- :class:`CycleDiscriminator` ``D(x, u)``: D_A's PatchGAN map of slot A and D_B's of slot B,
  side by side ``(N, h, 2w)``. It does not read ``u``: each D judges its domain alone.

With one optimiser per player, the two generators are trained together (the cycle term
couples them) and so are the two discriminators, each parameter by its own Adam moments: the
paper's optimisers. The losses average over both maps, that is half the paper's sum of the
two adversarial losses; the cycle and identity terms average over both slots too, so the
paper's weights (10 and 5) keep the paper's ratios. An input-gradient penalty differentiates
each sample's mean score over both maps: per domain, ``(grad D_A / 2, grad D_B / 2)``, so its
squared norm is a quarter of the two domains' summed, and R1 at gamma on this pair is R1 at
gamma / 2 on each discriminator of the paper's pair (whose losses are not halved).

The generators are U-Nets (models/translation.py) without dropout, as CycleGAN has none; the
paper's 9-block ResNet generator is sized for 256-px photographs, and a U-Net fits 28-64 px.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.pair import domain_slots, generate
from ..errors import ConfigError
from .translation import PatchDiscriminator, UNetGenerator

DIRECTIONS = ("AtoB", "BtoA")


class CycleGenerator(nn.Module):
    """``G(z, u) = (G_BA(b), G_AB(a))`` for joint samples ``u = (a, b)``."""

    def __init__(self, z_dim: int, channels: int, resolution: int, width: int = 64, norm: str = "instance") -> None:
        super().__init__()
        self.channels = channels
        self.a_to_b = UNetGenerator(z_dim, channels, channels, resolution, width, norm, dropout=False)
        self.b_to_a = UNetGenerator(z_dim, channels, channels, resolution, width, norm, dropout=False)

    def forward(self, z: Tensor, u: Tensor) -> Tensor:
        a, b = domain_slots(u)
        return torch.cat([self.b_to_a(z, b), self.a_to_b(z, a)], 1)


class CycleDiscriminator(nn.Module):
    """``D(x, u)``: D_A's patch map of slot A beside D_B's of slot B, ``(N, h, 2w)``."""

    def __init__(self, channels: int, resolution: int, width: int = 64, depth: int | None = None,
                 norm: str = "instance") -> None:
        super().__init__()
        self.channels = channels
        self.on_a = PatchDiscriminator(0, channels, resolution, width, depth, norm)
        self.on_b = PatchDiscriminator(0, channels, resolution, width, depth, norm)
        self.receptive_field = self.on_a.receptive_field

    def forward(self, x: Tensor, u: Tensor | None = None) -> Tensor:
        a, b = domain_slots(x)
        nothing = x[:, :0]  # each PatchGAN judges its domain alone: an empty condition
        return torch.cat([self.on_a(a, nothing), self.on_b(b, nothing)], 2)


def cycle_pair_channels(sample_shape: tuple[int, ...]) -> tuple[int, int]:
    """(channels of one domain, resolution) of joint samples (2C, H, H); ConfigError otherwise."""
    if len(sample_shape) != 3 or sample_shape[0] % 2 or sample_shape[1] != sample_shape[2]:
        raise ConfigError(f"cyclegan trains on joint samples of two domains (2C, H, H): unpaired data "
                          f"(data.name: sneakers2boots, unpaired); got samples of shape {tuple(sample_shape)}")
    return sample_shape[0] // 2, sample_shape[1]


def translate_one_way(generator: nn.Module, z: Tensor, images: Tensor, direction: str) -> Tensor:
    """One domain's ``images`` (N, C, H, W) translated to the other by a :class:`CycleGenerator`
    (``AtoB``: G_AB, ``BtoA``: G_BA), in eval mode: that direction's U-Net alone (the joint
    generator would also run the other one, on nothing)."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"the direction is AtoB or BtoA (got {direction!r})")
    return generate(generator.a_to_b if direction == "AtoB" else generator.b_to_a, z, images)
