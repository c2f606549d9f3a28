"""Exponential moving average of the generator's weights (Karras et al. 2018; Yazici et al. 2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .pair import call, has_batch_coupling


class Ema:
    def __init__(self, model: nn.Module, decay: float, z_dim: int, num_classes: int = 0,
                 conditions: torch.Tensor | None = None) -> None:
        """``conditions``: for a translation generator, input images the standing statistics
        are computed on (drawn at random from them)."""
        self.decay, self.z_dim, self.num_classes, self.conditions = decay, z_dim, num_classes, conditions
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._stats_stale = True  # BatchNorm statistics not yet recomputed for these weights

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
        self._stats_stale = True

    def decay_at(self, step: int) -> float:
        """Warm-up: early on the average would be dominated by the random initial weights,
        so the decay ramps up as (1 + step) / (10 + step) until it reaches ``decay``."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold in ``model``'s weights after generator update number ``step`` (0-based)."""
        ema_params = list(self.model.parameters())
        weight = 1.0 - self.decay_at(step)
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], weight)
        # Buffers (BatchNorm statistics) are copied, not averaged.
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)
        self._stats_stale = True

    @torch.no_grad()
    def refresh_batch_stats(self, batches: int = 16, batch_size: int = 128, seed: int = 0) -> None:
        """Recompute BatchNorm running statistics for the averaged weights.

        Statistics copied from the raw generator do not match the EMA's weights, and samples
        in eval mode then come out washed out; averaging the batch statistics of a few
        forward passes of the EMA itself fixes that ("standing statistics", Brock et al.
        2019); a conditional generator gets uniformly drawn classes, a translation one input
        images drawn from ``conditions``. Noise comes from its
        own generator: the training RNG is not touched. A no-op
        when the weights have not changed since the last refresh (saving, sampling and
        evaluating at one step all ask for it).
        """
        if not self._stats_stale:
            return
        self._stats_stale = False
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms or not has_batch_coupling(self.model):
            return
        device = next(self.model.parameters()).device
        g = torch.Generator().manual_seed(seed)
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes below
        self.model.train()
        for _ in range(batches):
            z = torch.randn(batch_size, self.z_dim, generator=g).to(device)
            if self.conditions is not None:
                y = self.conditions[torch.randint(len(self.conditions), (batch_size,), generator=g)].to(device)
            else:
                y = torch.randint(self.num_classes, (batch_size,), generator=g).to(device) if self.num_classes else None
            call(self.model, z, y)
        self.model.eval()
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
