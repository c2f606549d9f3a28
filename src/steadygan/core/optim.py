"""Optimisers by name, built from a player's config (learning rates per player: TTUR).

Each factory takes the options it uses and no others: ``d.momentum`` given to Adam, or
``d.betas`` given to SGD, is an error instead of a setting that silently does nothing.

All three use torch's multi-tensor ("foreach") implementation: one call updates every
parameter, where the default on a CPU is a Python loop over them; the results are
bit-identical to the loop's (``fused=True`` would round differently, which would break the
bit-exact resume of runs trained before).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import Registry

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer")
OPTION_KEYS = ("betas", "momentum", "nesterov", "alpha")  # PlayerConfig keys that are optimiser options


@OPTIMIZERS.register("adam", summary="Adam with betas (DCGAN default 0.5, 0.999)", paper="Kingma & Ba 2015")
def adam(params: Iterable[Tensor], lr: float, betas: list[float] = (0.5, 0.999)) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), foreach=True)


@OPTIMIZERS.register("sgd", summary="SGD with optional (Nesterov) momentum")
def sgd(params: Iterable[Tensor], lr: float, momentum: float = 0.0, nesterov: bool = False) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, foreach=True)


@OPTIMIZERS.register("rmsprop", summary="RMSprop (the WGAN paper's choice)", paper="Tieleman & Hinton 2012")
def rmsprop(params: Iterable[Tensor], lr: float, alpha: float = 0.99, momentum: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, momentum=momentum, foreach=True)


def optimizer_options(player_cfg: Any, player: str = "d") -> dict[str, Any]:
    """The optimiser options a player's config sets; ConfigError for one its optimiser does not take."""
    c = player_cfg
    options = {k: getattr(c, k) for k in OPTION_KEYS if getattr(c, k) is not None}
    valid = [k for k in OPTIMIZERS.get(c.optimizer).parameters() if k in OPTION_KEYS]
    for key in options:
        if key not in valid:
            raise ConfigError(f"{player}.{key} does not apply to optimizer '{c.optimizer}' (its options: "
                              f"{', '.join(f'{player}.{v}' for v in valid) or 'none'} besides lr); remove it "
                              f"(--set {player}.{key}=null)")
    return options


def build_optimizer(params: Iterable[Tensor], player_cfg: Any, player: str = "d") -> torch.optim.Optimizer:
    """``player_cfg`` is a :class:`steadygan.config.PlayerConfig`."""
    return OPTIMIZERS.build(player_cfg.optimizer, params=params, lr=player_cfg.lr,
                            **optimizer_options(player_cfg, player))


def apply_defaults(optimizer: torch.optim.Optimizer, lr_scale: float = 1.0) -> None:
    """Set every parameter group's options to the optimiser's defaults (the config's values),
    with the learning rate times ``lr_scale``: a loaded optimiser state carries the options it
    was saved with, and these must be the ones the run trains with now."""
    for group in optimizer.param_groups:
        for key in OPTION_KEYS:
            if key in optimizer.defaults:
                group[key] = optimizer.defaults[key]
        group["lr"] = optimizer.defaults["lr"] * lr_scale
