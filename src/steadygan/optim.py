"""Optimisers by name, built from a player's config (learning rates per player: TTUR)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from .registry import Registry

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer")


@OPTIMIZERS.register("adam", summary="Adam with betas (DCGAN default 0.5, 0.999)", paper="Kingma & Ba 2015")
def adam(params: Iterable[Tensor], lr: float, betas: list[float], momentum: float, nesterov: bool,
         alpha: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas))


@OPTIMIZERS.register("sgd", summary="SGD with optional (Nesterov) momentum")
def sgd(params: Iterable[Tensor], lr: float, betas: list[float], momentum: float, nesterov: bool,
        alpha: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov)


@OPTIMIZERS.register("rmsprop", summary="RMSprop (the WGAN paper's choice)", paper="Tieleman & Hinton 2012")
def rmsprop(params: Iterable[Tensor], lr: float, betas: list[float], momentum: float, nesterov: bool,
            alpha: float) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, momentum=momentum)


def build_optimizer(params: Iterable[Tensor], player_cfg) -> torch.optim.Optimizer:
    """``player_cfg`` is a :class:`steadygan.config.PlayerConfig`."""
    c = player_cfg
    return OPTIMIZERS.build(c.optimizer, params=params, lr=c.lr, betas=c.betas, momentum=c.momentum,
                            nesterov=c.nesterov, alpha=c.alpha)
