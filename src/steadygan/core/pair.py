"""A generator and a discriminator, and the one way they are called.

An unconditional network is called with its input alone, ``G(z)`` / ``D(x)``; a conditional
one with its condition as well, ``G(z, y)`` / ``D(x, y)``: class labels, or an image for a
translation pair. :func:`call` is the only place
that decides which, so the step, penalties, EMA, sampling and evaluation never test for it.
:func:`generate` is the one chunked, eval-mode way to draw many samples from a generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn


def call(net: nn.Module, inputs: Tensor, y: Tensor | None = None) -> Tensor:
    """``net(inputs)`` or, when labels are given, ``net(inputs, y)``."""
    return net(inputs) if y is None else net(inputs, y)


def bind(net: nn.Module, y: Tensor | None) -> Callable[[Tensor], Tensor]:
    """``x -> net(x, y)`` with the labels held fixed: what input-gradient penalties
    differentiate, so their gradient is taken with respect to the image only."""
    return lambda inputs: call(net, inputs, y)


def has_batch_coupling(module: nn.Module) -> bool:
    """True if some layer mixes samples of a batch (BatchNorm), which makes per-sample
    input gradients depend on the rest of the batch."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def domain_slots(u: Tensor) -> tuple[Tensor, Tensor]:
    """The two domains' images (slot A, slot B) of joint samples (N, 2C, H, W): a CycleGAN
    pair's samples and conditions (models/cycle.py)."""
    channels = u.shape[1] // 2
    return u[:, :channels], u[:, channels:]


def swap_domains(u: Tensor) -> Tensor:
    """``(a, b) -> (b, a)``: each image in the other domain's slot."""
    a, b = domain_slots(u)
    return torch.cat([b, a], 1)


def balanced_labels(n: int, num_classes: int) -> Tensor | None:
    """The classes a conditional generator draws when none are asked for: 0, 1, ..., K-1, 0,
    1, ... (balanced and deterministic); None for an unconditional one (``num_classes`` 0)."""
    return torch.arange(n) % num_classes if num_classes else None


@torch.no_grad()
def generate(net: nn.Module, z: Tensor, y: Tensor | None = None, batch_size: int = 256) -> Tensor:
    """``net``'s samples for noise ``z`` (and labels ``y``), ``batch_size`` at a time, in eval
    mode: BatchNorm uses its running statistics, so a sample does not depend on the rest of
    the batch nor on the chunking. The network's mode is restored afterwards."""
    was_training = net.training
    net.eval()
    try:
        labels = [None] * math.ceil(len(z) / batch_size) if y is None else y.split(batch_size)
        return torch.cat([call(net, chunk, labels_chunk) for chunk, labels_chunk in zip(z.split(batch_size), labels)])
    finally:
        net.train(was_training)


@dataclass
class GanPair:
    """The two networks of a GAN; ``num_classes > 0`` makes both conditional on a class,
    ``condition_shape`` (C, H, W) on an image (translation: ``G(z, a)``, ``D(b, a)``)."""

    generator: nn.Module
    discriminator: nn.Module
    num_classes: int = 0
    condition_shape: tuple[int, ...] | None = None
    # A CycleGAN pair: samples and conditions are joint samples of two domains (models/cycle.py).
    two_domains: bool = False

    def __post_init__(self) -> None:
        if self.two_domains and self.condition_shape is None:
            raise ValueError("a pair on two domains translates joint samples: give their condition_shape")
        if self.num_classes and self.condition_shape is not None:
            raise ValueError("a pair is conditional on a class or on an image, not both")

    @property
    def conditional(self) -> bool:
        """Conditional on a class label."""
        return self.num_classes > 0

    @property
    def translates(self) -> bool:
        """Conditional on an image: an image-to-image translation pair."""
        return self.condition_shape is not None

    def generate(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        self._check(y)
        return call(self.generator, z, y)

    def score(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        self._check(y)
        return call(self.discriminator, x, y)

    def _check(self, y: Tensor | None) -> None:
        if self.conditional and y is None:
            raise ValueError(f"this pair is conditional on {self.num_classes} classes: pass the labels y")
        if self.translates and (y is None or tuple(y.shape[1:]) != tuple(self.condition_shape)):
            got = "none" if y is None else f"shape {tuple(y.shape)}"
            raise ValueError(f"this pair translates images of shape {tuple(self.condition_shape)}: pass them as y "
                             f"(N, {', '.join(map(str, self.condition_shape))}); got {got}")
        if not self.conditional and not self.translates and y is not None:
            raise ValueError("this pair is unconditional: it takes no labels")
