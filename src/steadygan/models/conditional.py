"""Class-conditional wrappers around any of the project's generator/discriminator pairs.

* Generator: the class is embedded and joined to z (conditional GAN, Mirza & Osindero
  2014), so any generator built for ``z_dim + embed_dim`` inputs becomes conditional.
* Discriminator: the projection head (Miyato & Koyama 2018),
  D(x, y) = head(h(x)) + <e_y, h(x)>, with h the discriminator's penultimate features and
  e_y a learned class embedding. It needs a discriminator that exposes ``embed(x)`` (the
  (N, F) features) and ``head`` (a linear layer F -> 1); the project's do.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

CLASS_EMBED_DIM = 32  # size of the class embedding joined to z


class ConditionalGenerator(nn.Module):
    def __init__(self, base: nn.Module, num_classes: int, embed_dim: int = CLASS_EMBED_DIM) -> None:
        super().__init__()
        self.base, self.num_classes = base, num_classes
        self.embedding = nn.Embedding(num_classes, embed_dim)
        nn.init.normal_(self.embedding.weight, 0.0, 1.0)  # on the scale of z ~ N(0, 1)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.base(torch.cat([z, self.embedding(y)], 1))


class ProjectionDiscriminator(nn.Module):
    def __init__(self, base: nn.Module, num_classes: int) -> None:
        super().__init__()
        if not (hasattr(base, "embed") and isinstance(getattr(base, "head", None), nn.Linear)):
            raise TypeError(f"{type(base).__name__} has no embed()/head: cannot add a projection head")
        self.base, self.num_classes = base, num_classes
        self.embedding = nn.Embedding(num_classes, base.head.in_features)
        nn.init.normal_(self.embedding.weight, 0.0, 0.02)  # DCGAN's scale: starts near the unconditional D

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.base.embed(x)
        return self.base.head(h).squeeze(1) + (self.embedding(y) * h).sum(1)
