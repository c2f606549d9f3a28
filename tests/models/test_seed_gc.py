"""The GC-GAN document's networks: the document's layer sizes at the default width, every layer
scaled by model.width otherwise."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from steadygan.models import build_models


def _widths(net: nn.Module) -> list[int]:
    return [m.out_features if isinstance(m, nn.Linear) else m.out_channels
            for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]


def test_the_default_width_has_the_documents_layer_sizes():
    pair = build_models("seed-gc", (3, 64, 64), 100)
    # G: Dense 128 -> 1024 -> 1024 -> 4x4x512, then 256, 256, 128 and the image's 3 channels.
    assert _widths(pair.generator) == [128, 1024, 1024, 4 * 4 * 512, 256, 256, 128, 3]
    # D: 64, 128, 256 channels and one unit.
    assert _widths(pair.discriminator) == [64, 128, 256, 1]


@pytest.mark.parametrize("res", [28, 32, 64])
def test_half_width_halves_every_layer_and_keeps_the_shapes(res):
    full, half = (build_models("seed-gc", (1, res, res), 16, width=w) for w in (64, 32))
    assert _widths(half.generator)[:-1] == [n // 2 for n in _widths(full.generator)[:-1]]
    assert _widths(half.discriminator)[:-1] == [n // 2 for n in _widths(full.discriminator)[:-1]]
    x = half.generator(torch.randn(2, 16))
    assert x.shape == (2, 1, res, res) and half.discriminator(x).shape == (2,)
