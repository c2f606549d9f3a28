"""PacGAN's 2-D pair (models/pacgan_mlp.py) against its definition."""

from __future__ import annotations

import pytest
import torch

from steadygan.errors import ConfigError
from steadygan.models import build_models
from steadygan.models.pacgan_mlp import Maxout


def test_maxout_is_the_largest_of_its_affine_pieces():
    torch.manual_seed(0)
    layer = Maxout(3, 4, pieces=5)
    x = torch.randn(6, 3)
    W, b = layer.linear.weight.view(4, 5, 3), layer.linear.bias.view(4, 5)
    by_hand = torch.stack([torch.stack([W[o, k] @ x[n] + b[o, k] for k in range(5)]).max()
                           for n in range(6) for o in range(4)]).view(6, 4)
    torch.testing.assert_close(layer(x), by_hand)


def test_the_pair_has_the_protocols_layers_and_initialisation():
    torch.manual_seed(0)
    pair = build_models("pacgan-mlp", (2,), 2)
    G, D = pair.generator, pair.discriminator
    g_linear = [m for m in G.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features, m.bias is not None) for m in g_linear] == \
        [(2, 400, False), (400, 400, False), (400, 400, False), (400, 400, False), (400, 2, True)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in G.modules()) == 4
    maxouts = [m for m in D.modules() if isinstance(m, Maxout)]
    assert [(m.linear.in_features, m.out_features, m.pieces) for m in maxouts] == [(2, 200, 5), (200, 200, 5), (200,
                                                                                                                200, 5)]
    assert D.head.in_features == 200 and D.head.out_features == 1
    weights = torch.cat([m.weight.flatten() for m in D.modules() if isinstance(m, torch.nn.Linear)])
    assert weights.std().item() == pytest.approx(0.02, rel=0.01)  # 405k draws: the std is within 0.3%
    assert all(m.bias.abs().max() == 0 for m in D.modules() if isinstance(m, torch.nn.Linear))
    assert G(torch.randn(7, 2)).shape == (7, 2) and D(torch.randn(7, 2)).shape == (7,)


def test_it_refuses_images_and_size_options():
    with pytest.raises(ConfigError, match="is for vector data"):
        build_models("pacgan-mlp", (1, 28, 28), 2)
    with pytest.raises(ConfigError, match="model.width does not apply to model 'pacgan-mlp'"):
        build_models("pacgan-mlp", (2,), 2, width=100)
