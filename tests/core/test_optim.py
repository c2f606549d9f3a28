"""Optimisers: the multi-tensor implementation updates exactly as torch's per-parameter loop.

Runs trained before the switch resume bit for bit only if the arithmetic is the same, so
the comparison is exact (torch.equal), over enough steps for every state to matter."""

from __future__ import annotations

import copy

import pytest
import torch

from steadygan.core.optim import build_optimizer
from steadygan.training.build import load_config


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


def test_each_player_s_options_reach_its_optimiser_and_a_foreign_one_is_named():
    from steadygan.core.optim import optimizer_options
    from steadygan.errors import ConfigError

    cfg = load_config(None, ["g.optimizer=sgd", "g.betas=null", "g.momentum=0.9", "g.nesterov=true"])
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg.g, "g")
    assert (opt.param_groups[0]["momentum"], opt.param_groups[0]["nesterov"]) == (0.9, True)
    cfg.g.betas = [0.5, 0.999]  # adam's option on sgd
    with pytest.raises(ConfigError) as exc:
        build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg.g, "g")
    assert str(exc.value) == ("g.betas does not apply to optimizer 'sgd' (its options: g.momentum, g.nesterov "
                              "besides lr); remove it (--set g.betas=null)")
    with pytest.raises(ConfigError, match=r"^d\.betas does not apply"):
        optimizer_options(cfg.g)  # the discriminator's by default
    with pytest.raises(ConfigError, match=r"^d\.betas does not apply"):
        build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg.g)
