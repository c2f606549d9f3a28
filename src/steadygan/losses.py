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


# Each player's loss as a named function of the logits (not a lambda), so each can be read,
# tested and mutation-tested on its own. softplus(-l) = -log sigmoid(l); softplus(l) = -log(1 - sigmoid(l)).

def log_loss_d(real: Tensor, fake: Tensor) -> Tensor:
    """-log D(real) - log(1 - D(fake)): the discriminator of the original GAN."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_g(fake: Tensor) -> Tensor:
    """log(1 - D(G(z))), minimised by G (saturates while D wins)."""
    return -F.softplus(fake).mean()


def non_saturating_g(fake: Tensor) -> Tensor:
    """-log D(G(z))."""
    return F.softplus(-fake).mean()


def wasserstein_d(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def critic_score_g(fake: Tensor) -> Tensor:
    """-D(G(z)): the generator loss of the Wasserstein and hinge games."""
    return -fake.mean()


def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def least_squares_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * ((real - 1).square().mean() + fake.square().mean())


def least_squares_g(fake: Tensor) -> Tensor:
    return 0.5 * (fake - 1).square().mean()


@LOSSES.register("minimax", summary="original GAN game; G minimises log(1 - D(G(z))) (saturates early)",
                 paper="Goodfellow et al. 2014")
def minimax() -> AdversarialLoss:
    return AdversarialLoss("minimax", log_loss_d, minimax_g)


@LOSSES.register("non-saturating", summary="D as minimax; G maximises log D(G(z)) (the usual choice)",
                 paper="Goodfellow et al. 2014")
def non_saturating() -> AdversarialLoss:
    return AdversarialLoss("non-saturating", log_loss_d, non_saturating_g)


@LOSSES.register("wasserstein", summary="critic estimates E[D(real)] - E[D(fake)]; needs a Lipschitz constraint",
                 paper="Arjovsky et al. 2017")
def wasserstein() -> AdversarialLoss:
    return AdversarialLoss("wasserstein", wasserstein_d, critic_score_g)


@LOSSES.register("hinge", summary="D: relu(1 - D(real)) + relu(1 + D(fake)); G: -D(fake)",
                 paper="Lim & Ye 2017; Miyato et al. 2018")
def hinge() -> AdversarialLoss:
    return AdversarialLoss("hinge", hinge_d, critic_score_g)


@LOSSES.register("least-squares", summary="LSGAN with targets a=0, b=1, c=1 (squared error on logits)",
                 paper="Mao et al. 2017")
def least_squares() -> AdversarialLoss:
    return AdversarialLoss("least-squares", least_squares_d, least_squares_g)


def build_loss(name: str) -> AdversarialLoss:
    return LOSSES.build(name)


__all__ = ["AdversarialLoss", "LOSSES", "build_loss"]
