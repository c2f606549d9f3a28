"""Adversarial losses, written on discriminator logits (no sigmoid inside the models).

Each loss gives the discriminator's loss on (real, fake) logits and the generator's loss
on fake logits; both are minimised. Working on logits keeps the log-sigmoid terms stable
(``softplus`` instead of ``log(sigmoid(.))``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import Tensor

from .registry import Registry


@dataclass(frozen=True)
class AdversarialLoss:
    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]


LOSSES: Registry[AdversarialLoss] = Registry("loss")


@LOSSES.register("minimax", summary="original GAN game; G minimises log(1 - D(G(z))) (saturates early)",
                 paper="Goodfellow et al. 2014")
def minimax() -> AdversarialLoss:
    # log(1 - sigmoid(l)) = -softplus(l)
    return AdversarialLoss(
        "minimax",
        lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
        lambda fake: -F.softplus(fake).mean(),
    )


@LOSSES.register("non-saturating", summary="D as minimax; G maximises log D(G(z)) (the usual choice)",
                 paper="Goodfellow et al. 2014")
def non_saturating() -> AdversarialLoss:
    return AdversarialLoss(
        "non-saturating",
        lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
        lambda fake: F.softplus(-fake).mean(),
    )


@LOSSES.register("wasserstein", summary="critic estimates E[D(real)] - E[D(fake)]; needs a Lipschitz constraint",
                 paper="Arjovsky et al. 2017")
def wasserstein() -> AdversarialLoss:
    return AdversarialLoss(
        "wasserstein",
        lambda real, fake: fake.mean() - real.mean(),
        lambda fake: -fake.mean(),
    )


@LOSSES.register("hinge", summary="D: relu(1 - D(real)) + relu(1 + D(fake)); G: -D(fake)",
                 paper="Lim & Ye 2017; Miyato et al. 2018")
def hinge() -> AdversarialLoss:
    return AdversarialLoss(
        "hinge",
        lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
        lambda fake: -fake.mean(),
    )


@LOSSES.register("least-squares", summary="LSGAN with targets a=0, b=1, c=1 (squared error on logits)",
                 paper="Mao et al. 2017")
def least_squares() -> AdversarialLoss:
    return AdversarialLoss(
        "least-squares",
        lambda real, fake: 0.5 * ((real - 1).square().mean() + fake.square().mean()),
        lambda fake: 0.5 * (fake - 1).square().mean(),
    )


def build_loss(name: str) -> AdversarialLoss:
    return LOSSES.build(name)


__all__ = ["AdversarialLoss", "LOSSES", "build_loss"]
