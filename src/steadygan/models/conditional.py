"""Class-conditional wrappers around any of the project's generator/discriminator pairs.

* Generator, ``model.g_conditioning=embed`` (the default): the class is embedded and joined
  to z (conditional GAN, Mirza & Osindero 2014), so any generator built for
  ``z_dim + embed_dim`` inputs becomes conditional.
* Generator, ``model.g_conditioning=cbn``: conditional batch normalisation (de Vries et al.
  2017), as in the projection-discriminator GANs (Miyato & Koyama 2018) and BigGAN (Brock et
  al. 2019): every BatchNorm of the generator gets a per-class gain and bias; z alone is the
  input. The class then scales the features at every resolution instead of entering once.
* Discriminator: the projection head (Miyato & Koyama 2018),
  D(x, y) = head(h(x)) + <e_y, h(x)>, with h the discriminator's penultimate features and
  e_y a learned class embedding. It needs a discriminator that exposes ``embed(x)`` (the
  (N, F) features) and ``head`` (a linear layer F -> 1); the project's do. With
  ``class_head=True`` it also has a linear class head on the same features,
  ``classify(x) -> (N, K)`` logits, for AC-GAN's class term (Odena et al. 2017; the
  ``aux-classifier`` penalty). Without it the module's parameters are as they always were,
  so runs saved before it load unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError

CLASS_EMBED_DIM = 32  # size of the class embedding joined to z
CLASS_HEAD = "class_head."  # the state-dict prefix of ProjectionDiscriminator's optional class head
G_CONDITIONINGS = ("embed", "cbn")


class ConditionalGenerator(nn.Module):
    def __init__(self, base: nn.Module, num_classes: int, embed_dim: int = CLASS_EMBED_DIM) -> None:
        super().__init__()
        self.base, self.num_classes = base, num_classes
        self.embedding = nn.Embedding(num_classes, embed_dim)
        nn.init.normal_(self.embedding.weight, 0.0, 1.0)  # on the scale of z ~ N(0, 1)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.base(torch.cat([z, self.embedding(y)], 1))


class ClassBatchNorm(nn.Module):
    """A BatchNorm without its own affine, followed by the class's gain (from 1) and bias (from 0).

    The generator that holds it sets ``labels`` before each forward (:class:`CbnGenerator`)."""

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm, num_classes: int) -> None:
        super().__init__()
        self.norm = type(norm)(norm.num_features, eps=norm.eps, momentum=norm.momentum, affine=False,
                               track_running_stats=norm.track_running_stats)
        self.gain = nn.Embedding(num_classes, norm.num_features)
        self.bias = nn.Embedding(num_classes, norm.num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)
        self.labels: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.labels is None:
            raise RuntimeError("ClassBatchNorm needs the batch's labels: call it through its CbnGenerator")
        shape = (len(x), -1) + (1,) * (x.dim() - 2)
        return self.norm(x) * self.gain(self.labels).view(shape) + self.bias(self.labels).view(shape)


class CbnGenerator(nn.Module):
    """A generator whose BatchNorm layers are conditioned on the class (:class:`ClassBatchNorm`)."""

    def __init__(self, base: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.base, self.num_classes = base, num_classes
        replaced = _replace_batch_norms(base, num_classes)
        if not replaced:
            raise ConfigError("model.g_conditioning=cbn conditions the generator's BatchNorm layers, and this "
                              "generator has none: set model.g_norm=batch, or model.g_conditioning=embed")

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        for module in self.base.modules():
            if isinstance(module, ClassBatchNorm):
                module.labels = y
        try:
            return self.base(z)
        finally:
            for module in self.base.modules():
                if isinstance(module, ClassBatchNorm):
                    module.labels = None  # no tensor of this batch outlives the call


def _replace_batch_norms(module: nn.Module, num_classes: int) -> int:
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, ClassBatchNorm(child, num_classes))
            count += 1
        else:
            count += _replace_batch_norms(child, num_classes)
    return count


class ProjectionDiscriminator(nn.Module):
    def __init__(self, base: nn.Module, num_classes: int, class_head: bool = False) -> None:
        super().__init__()
        if not (hasattr(base, "embed") and isinstance(getattr(base, "head", None), nn.Linear)):
            raise TypeError(f"{type(base).__name__} has no embed()/head: cannot add a projection head")
        self.base, self.num_classes = base, num_classes
        self.embedding = nn.Embedding(num_classes, base.head.in_features)
        nn.init.normal_(self.embedding.weight, 0.0, 0.02)  # DCGAN's scale: starts near the unconditional D
        self.class_head = nn.Linear(base.head.in_features, num_classes) if class_head else None

    def classify(self, x: Tensor) -> Tensor:
        """Class logits (N, K) of ``x`` from the class head on D's features."""
        if self.class_head is None:
            raise RuntimeError("this discriminator has no class head (build it with class_head=True)")
        return self.class_head(self.base.embed(x))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.base.embed(x)
        return self.base.head(h).squeeze(1) + (self.embedding(y) * h).sum(1)
