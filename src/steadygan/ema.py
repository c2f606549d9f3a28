"""Exponential moving average of the generator's weights (Karras et al. 2018; Yazici et al. 2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class Ema:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - self.decay)
        # Buffers (BatchNorm statistics) are copied, not averaged.
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)
