"""A generator network as a source of samples: seeded, chunked, split into parts, class-balanced."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from steadygan.core.sampler import NetworkSampler
from steadygan.errors import ConfigError


class Labelled(nn.Module):
    """z -> z[:, :2] + 10 * class (or z[:, :2] unconditional)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, z, y=None):
        return z[:, :2] if y is None else z[:, :2] + 10 * y[:, None].float()


def test_samples_come_from_their_seed_and_parts_make_the_whole():
    sampler = NetworkSampler(Labelled(), z_dim=4)
    whole = sampler.sample(10, seed=3)
    z = torch.randn(10, 4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(whole, z[:, :2])
    assert not torch.equal(whole, sampler.sample(10, seed=4))
    parts = [sampler.sample(10, seed=3, batch_size=2, part=(k, 3)) for k in range(3)]
    assert [len(p) for p in parts] == [4, 3, 3] and torch.equal(torch.cat(parts), whole)


def test_a_conditional_sampler_draws_balanced_or_given_classes():
    sampler = NetworkSampler(Labelled(), z_dim=4, num_classes=3, dataset="idx")
    assert sampler.conditional and sampler.labels_for(5).tolist() == [0, 1, 2, 0, 1]
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampler.sample(5, seed=0), z[:, :2] + 10 * torch.tensor([0, 1, 2, 0, 1])[:, None])
    given = sampler.sample(3, seed=0, labels=torch.tensor([2, 2, 2]))
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(given, z[:, :2] + 20)
    with pytest.raises(ConfigError, match=r"^classes must be 3 integers in 0\.\.2$"):
        sampler.sample(3, labels=torch.tensor([0, 1, 3]))
    with pytest.raises(ConfigError, match=r"^classes must be 3 integers in 0\.\.2$"):
        sampler.sample(3, labels=torch.tensor([0, -1, 1]))
    with pytest.raises(ConfigError, match=r"^classes must be 3 integers"):
        sampler.sample(3, labels=torch.tensor([0, 1]))


def test_an_unconditional_sampler_takes_no_class():
    sampler = NetworkSampler(Labelled(), z_dim=4)
    assert not sampler.conditional and sampler.labels_for(3) is None
    with pytest.raises(ConfigError, match="unconditional: it takes no class"):
        sampler.sample(2, labels=torch.tensor([0, 1]))
