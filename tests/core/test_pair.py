"""The pair convention: how a network is called, bound to labels, and sampled in chunks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from steadygan.core.pair import GanPair, balanced_labels, bind, call, generate, has_batch_coupling


class Echo(nn.Module):
    """Returns what it was called with, so a test sees the arguments."""

    def forward(self, x, y=None):
        return (x, y)


def test_call_passes_labels_only_when_there_are_some():
    net, x, y = Echo(), torch.ones(2, 3), torch.tensor([1, 0])
    assert call(net, x) == (x, None)
    out_x, out_y = call(net, x, y)
    assert out_x is x and out_y is y
    bound = bind(net, y)
    assert bound(x)[1] is y and bind(net, None)(x)[1] is None


def test_batch_coupling_is_batchnorm_anywhere_in_the_module():
    assert has_batch_coupling(nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2))))
    assert has_batch_coupling(nn.BatchNorm2d(3))
    assert not has_batch_coupling(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2), nn.InstanceNorm2d(2)))


def test_balanced_labels_cycle_through_the_classes():
    assert balanced_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert balanced_labels(4, 0) is None


class Affine(nn.Module):
    """z -> 2 z + class, with BatchNorm whose running mean is 0 and variance 1 (eval: identity)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(3, affine=False)

    def forward(self, z, y=None):
        out = self.norm(2 * z)
        return out if y is None else out + y[:, None].float()


@pytest.mark.parametrize("batch_size", [1, 3, 256])
def test_generate_is_chunked_in_eval_mode_and_restores_the_mode(batch_size):
    net = Affine().train()
    z, y = torch.randn(7, 3), torch.arange(7) % 2
    expected = 2 * z / math.sqrt(1 + net.norm.eps)  # eval: the running statistics, not each chunk's own
    torch.testing.assert_close(generate(net, z, batch_size=batch_size), expected)
    torch.testing.assert_close(generate(net, z, y, batch_size=batch_size), expected + y[:, None])
    assert net.training and torch.equal(net.norm.running_mean, torch.zeros(3))  # mode restored, statistics kept
    assert not generate(net, z.requires_grad_(True)).requires_grad  # no graph
    net.eval()
    generate(net, z)
    assert not net.training


def test_a_pair_checks_its_labels():
    pair = GanPair(Echo(), Echo(), num_classes=3)
    assert pair.conditional and pair.generate(torch.ones(1), torch.tensor([2]))[1].item() == 2
    with pytest.raises(ValueError, match="conditional on 3 classes: pass the labels y"):
        pair.score(torch.ones(1))
    with pytest.raises(ValueError, match="unconditional: it takes no labels"):
        GanPair(Echo(), Echo()).generate(torch.ones(1), torch.tensor([0]))
