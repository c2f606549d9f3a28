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


def test_an_optimiser_without_options_says_none_besides_lr(monkeypatch):
    from steadygan.core import optim
    from steadygan.errors import ConfigError
    from steadygan.registry import Registry

    cfg = load_config(None, ["d.betas=[0.5, 0.9]"])
    bare = Registry("optimizer")
    bare.register("plain", summary="SGD without options")(lambda params, lr: torch.optim.SGD(params, lr=lr))
    monkeypatch.setattr(optim, "OPTIMIZERS", bare)
    cfg.d.optimizer = "plain"
    with pytest.raises(ConfigError) as exc:
        optim.optimizer_options(cfg.d)
    assert str(exc.value) == ("d.betas does not apply to optimizer 'plain' (its options: none besides lr); "
                              "remove it (--set d.betas=null)")


@pytest.mark.parametrize("name, options", [("adam", {"betas": [0.0, 0.99]}), ("sgd", {"momentum": 0.9}),
                                           ("rmsprop", {"alpha": 0.9, "momentum": 0.5})])
def test_apply_defaults_puts_the_config_s_options_and_the_scaled_rate_back_over_a_loaded_state(name, options):
    from steadygan.core.optim import OPTIMIZERS, apply_defaults

    params = [torch.nn.Parameter(torch.ones(3))]
    opt = OPTIMIZERS.build(name, params=params, lr=0.1, **options)
    for group in opt.param_groups:  # what a loaded state of another run would leave behind
        group.update({key: "stale" for key in group if key in options}, lr=5.0)
    apply_defaults(opt, lr_scale=0.25)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.1 * 0.25)
    assert {key: group[key] for key in options} == {key: opt.defaults[key] for key in options}
    assert all(group[key] == opt.defaults[key] for key in ("betas", "momentum", "alpha", "nesterov")
               if key in opt.defaults)
