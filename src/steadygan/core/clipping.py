"""Gradient clippers, applied per player between the final gradients and the optimiser step.

Every clipper reports the global L2 norm of the gradients *before* clipping and the
fraction of values it changed, so that a run's stats show how hard it was working.
``weight-clip`` (WGAN) acts on the weights after the step instead of on the gradients.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import Registry


@dataclass
class ClipStats:
    grad_norm: Tensor  # global L2 norm of the gradients before clipping
    clipped: Tensor    # fraction of values (gradients, or weights for weight-clip) changed


def _grads(params: list[Tensor]) -> list[Tensor]:
    return [p.grad for p in params if p.grad is not None]


def global_grad_norm(params: list[Tensor]) -> Tensor:
    grads = _grads(params)
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0)


# --- the clippers as functions, for any training loop (the registry classes call them) -------

@torch.no_grad()
def clip_value_(params: list[Tensor], eps: float) -> Tensor:
    """clip(g, -eps, eps) on every gradient element, in place (the GC-GAN document's
    clipper); returns the fraction of gradient values it changed."""
    grads = _grads(params)
    if not grads:
        return torch.zeros(())
    over = sum(g.abs().gt(eps).sum() for g in grads)
    total = sum(g.numel() for g in grads)
    torch.nn.utils.clip_grad_value_(params, eps)
    return over.float() / total


def clip_norm_(params: list[Tensor], max_norm: float) -> Tensor:
    """Rescale all gradients in place so their global L2 norm is at most ``max_norm``
    (Pascanu et al. 2013); returns the norm before clipping."""
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


@torch.no_grad()
def agc_(params: list[Tensor], clipping: float = 0.01, eps: float = 1e-3) -> Tensor:
    """Adaptive gradient clipping (Brock et al. 2021), in place: each output unit's gradient
    is rescaled to at most ``clipping`` times its weight norm (at least ``eps``, so freshly
    zero-initialised weights stay trainable); returns the fraction of values changed."""
    changed, total = None, 0
    for p in params:
        if p.grad is None:
            continue
        max_norm = clipping * unitwise_norm(p).clamp_min(eps)
        g_norm = unitwise_norm(p.grad)
        trigger = g_norm > max_norm
        scale = max_norm / g_norm.clamp_min(1e-6)
        p.grad.copy_(torch.where(trigger, p.grad * scale, p.grad))
        count = trigger.expand_as(p.grad).sum()
        changed = count if changed is None else changed + count
        total += p.grad.numel()
    return torch.zeros((), device=params[0].device if params else None) if changed is None else changed.float() / total


@torch.no_grad()
def weight_clip_(params: list[Tensor], c: float) -> Tensor:
    """WGAN weight clipping (Arjovsky et al. 2017): clamp every weight to [-c, c] in place;
    returns the fraction of weights that were outside."""
    over = sum(p.abs().gt(c).sum() for p in params)
    total = sum(p.numel() for p in params)
    for p in params:
        p.clamp_(-c, c)
    return over.float() / total


class Clipper(ABC):  # noqa: B024 - the base is a usable no-op: subclasses override what they change
    """No-op base: reports the gradient norm and changes nothing."""

    name = "none"

    def clip_(self, params: list[Tensor]) -> ClipStats:
        """Clip gradients in place; called once the gradients are final."""
        norm = global_grad_norm(params)
        return ClipStats(norm, torch.zeros((), device=norm.device))

    def after_step_(self, params: list[Tensor]) -> Tensor | None:
        """Act on the weights after the optimiser step; returns a clipped fraction or None."""
        return None

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({opts})"


CLIPPERS: Registry[Clipper] = Registry("clipper")


def _positive(name: str, option: str, value: float) -> float:
    value = float(value)
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"clipper '{name}': {option} must be a finite number > 0 (got {value})")
    return value


@CLIPPERS.register("none", summary="no clipping; still logs the gradient norm")
class NoClip(Clipper):
    pass


@CLIPPERS.register("value", summary="clip(g, -eps, eps) on every gradient element (the GC-GAN document)",
                   paper="GC-GAN source document, sec. 3.4; Mikolov 2012 / Pascanu et al. 2013")
class ValueClipper(Clipper):
    name = "value"

    def __init__(self, eps: float = 0.01) -> None:
        self.eps = _positive("value", "eps", eps)

    def clip_(self, params: list[Tensor]) -> ClipStats:
        norm = global_grad_norm(params)
        return ClipStats(norm, clip_value_(params, self.eps))


@CLIPPERS.register("norm", summary="rescale all gradients so their global L2 norm is at most max_norm",
                   paper="Pascanu et al. 2013, On the difficulty of training RNNs")
class NormClipper(Clipper):
    name = "norm"

    def __init__(self, max_norm: float = 1.0) -> None:
        self.max_norm = _positive("norm", "max_norm", max_norm)

    def clip_(self, params: list[Tensor]) -> ClipStats:
        norm = clip_norm_(params, self.max_norm)
        # Rescaling touches every value or none.
        return ClipStats(norm, (norm > self.max_norm).float())


def unitwise_norm(x: Tensor) -> Tensor:
    """L2 norm per output unit (dim 0 row), broadcastable to x; biases are per element."""
    if x.ndim <= 1:
        return x.abs()
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.ndim)), keepdim=True)


@CLIPPERS.register("agc", summary="adaptive: clip each unit's gradient to clipping * its weight norm",
                   paper="Brock et al. 2021, High-Performance Large-Scale Image Recognition Without Normalization")
class AdaptiveClipper(Clipper):
    name = "agc"

    def __init__(self, clipping: float = 0.01, eps: float = 1e-3) -> None:
        self.clipping = _positive("agc", "clipping", clipping)
        self.eps = _positive("agc", "eps", eps)

    def clip_(self, params: list[Tensor]) -> ClipStats:
        norm = global_grad_norm(params)
        return ClipStats(norm, agc_(params, self.clipping, self.eps))


@CLIPPERS.register("weight-clip", summary="WGAN weight clipping: clamp every weight to [-c, c] after the step",
                   paper="Arjovsky et al. 2017, Wasserstein GAN")
class WeightClipper(Clipper):
    name = "weight-clip"

    def __init__(self, c: float = 0.01) -> None:
        self.c = _positive("weight-clip", "c", c)

    def after_step_(self, params: list[Tensor]) -> Tensor:
        return weight_clip_(params, self.c)


def build_clipper(spec: dict | None) -> Clipper:
    """Build from ``{"name": ..., **options}``; None means no clipping."""
    if spec is None:
        return NoClip()
    spec = dict(spec)
    name = spec.pop("name", None)
    if name is None:
        raise ConfigError(f"a clipper needs a name; choose from: {', '.join(CLIPPERS.names())}")
    return CLIPPERS.build(name, **spec)
