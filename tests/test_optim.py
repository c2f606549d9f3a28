"""Optimisers: the multi-tensor implementation updates exactly as torch's per-parameter loop.

Runs trained before the switch resume bit for bit only if the arithmetic is the same, so
the comparison is exact (torch.equal), over enough steps for every state to matter."""

from __future__ import annotations

import copy

import pytest
import torch

from steadygan.config import load_config
from steadygan.optim import build_optimizer


@pytest.mark.parametrize("sets", [["d.optimizer=adam"], ["d.optimizer=sgd", "d.betas=null", "d.momentum=0.9",
                                                         "d.nesterov=true"],
                                  ["d.optimizer=rmsprop", "d.betas=null", "d.momentum=0.5"]])
def test_our_optimisers_update_bit_for_bit_as_the_per_parameter_loop(sets):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    loop_net, start = copy.deepcopy(net), copy.deepcopy(net)
    ours = build_optimizer(list(net.parameters()), load_config(None, sets).d, "d")
    assert ours.defaults["foreach"] is True
    loop = type(ours)(loop_net.parameters(), **{**ours.defaults, "foreach": False})
    for step in range(10):
        x = torch.randn(8, 6, generator=torch.Generator().manual_seed(step))
        for model, opt in ((net, ours), (loop_net, loop)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(net.parameters(), loop_net.parameters()):
        assert torch.equal(a, b)
    assert not any(torch.equal(a, b) for a, b in zip(net.parameters(), start.parameters()))  # it trained
