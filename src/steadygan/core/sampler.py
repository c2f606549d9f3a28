"""A generator network as a source of samples: seeded noise, chunked generation, balanced classes.

What the metrics need of a generator (``steadygan.metrics.Generative``), for any network under
the pair convention: the periodic evaluation wraps the networks it trains in one, and a
trained run's generator (``steadygan.training.sampling.LoadedGenerator``) is one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .collectives import chunk_bounds
from .pair import balanced_labels, generate


@dataclass
class NetworkSampler:
    """A generator network as the metrics see it (``steadygan.metrics.Generative``): n samples
    from a seeded noise stream, for given classes or balanced ones when it is conditional."""

    generator: nn.Module
    z_dim: int
    num_classes: int = 0          # 0: unconditional
    dataset: str | None = None    # the data it was trained on, when known (an evaluator checks it)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def labels_for(self, n: int) -> torch.Tensor | None:
        """The classes ``sample`` draws when none are given (see ``core.pair.balanced_labels``)."""
        return balanced_labels(n, self.num_classes)

    def sample(self, n: int, seed: int = 0, batch_size: int = 256, labels: torch.Tensor | None = None,
               part: tuple[int, int] = (0, 1)) -> torch.Tensor:
        """n samples (images in [-1, 1], or 2-D points) from noise seeded by ``seed``;
        a conditional generator draws class ``labels[i]`` for sample i (default ``labels_for(n)``).
        ``part=(k, parts)``: only the k-th of ``parts`` contiguous chunks of those n samples
        (each process of a distributed evaluation generates one)."""
        if labels is not None and not self.conditional:
            raise ConfigError("this run's generator is unconditional: it takes no class")
        labels = self.labels_for(n) if labels is None else torch.as_tensor(labels).long()
        if labels is not None:
            if labels.shape != (n,) or labels.min() < 0 or labels.max() >= self.num_classes:
                raise ConfigError(f"classes must be {n} integers in 0..{self.num_classes - 1}")
        z = torch.randn(n, self.z_dim, generator=torch.Generator().manual_seed(seed))
        start, stop = chunk_bounds(n, *part)
        device = next(self.generator.parameters()).device
        y = None if labels is None else labels[start:stop].to(device)
        return generate(self.generator, z[start:stop].to(device), y, batch_size)


@dataclass
class TranslationSampler:
    """A translation generator as the metrics see it (``steadygan.metrics.Generative``): its
    samples are the translations of fixed input images, sample i of input i, with noise
    seeded by ``seed``."""

    generator: nn.Module
    z_dim: int
    inputs: torch.Tensor          # [-1, 1] (N, C, H, W): what it translates, in order
    dataset: str | None = None
    num_classes: int = 0          # it generates no class on request

    def sample(self, n: int, seed: int = 0, batch_size: int = 256, labels: torch.Tensor | None = None,
               part: tuple[int, int] = (0, 1)) -> torch.Tensor:
        """The translations of the first n inputs (``part``: a contiguous chunk of them)."""
        if labels is not None:
            raise ConfigError("a translation generator is conditioned on input images, not classes")
        if n > len(self.inputs):
            raise ConfigError(f"{n} translations asked for, but only {len(self.inputs)} input images are held")
        z = torch.randn(n, self.z_dim, generator=torch.Generator().manual_seed(seed))
        start, stop = chunk_bounds(n, *part)
        device = next(self.generator.parameters()).device
        return generate(self.generator, z[start:stop].to(device), self.inputs[start:stop].to(device), batch_size)
