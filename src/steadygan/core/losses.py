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

from ..registry import Registry


@dataclass(frozen=True)
class AdversarialLoss:
    """``d_loss(real, fake)``; ``g_loss(fake)``, or ``g_loss(fake, real)`` for a loss that
    pairs samples (``pairs_samples``: the relativistic loss compares generated sample i with
    real sample i, so G's loss needs D's logits on real data too). Call :meth:`generator`."""

    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[..., Tensor]
    pairs_samples: bool = False

    def generator(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        """G's loss on D's logits of its samples (and of real samples, for a pairing loss)."""
        if not self.pairs_samples:
            return self.g_loss(fake)
        if real is None:
            raise ValueError(f"the {self.name} loss pairs generated and real samples: pass D's real logits")
        return self.g_loss(fake, real)


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


def relativistic_d(real: Tensor, fake: Tensor) -> Tensor:
    """softplus(D(fake_i) - D(real_i)) = -log sigmoid(D(real_i) - D(fake_i)): D learns that a
    real sample is more real than its paired generated one."""
    return F.softplus(fake - real).mean()


def relativistic_g(fake: Tensor, real: Tensor) -> Tensor:
    """softplus(D(real_i) - D(fake_i)): the same comparison, from G's side."""
    return F.softplus(real - fake).mean()


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


@LOSSES.register("relativistic",
                 summary="RpGAN: softplus(D(fake_i) - D(real_i)) for D and the reverse for G, each real sample "
                         "paired with a generated one",
                 paper="Jolicoeur-Martineau 2019 (relativistic GAN); Huang et al. 2024 (R3GAN)")
def relativistic() -> AdversarialLoss:
    return AdversarialLoss("relativistic", relativistic_d, relativistic_g, pairs_samples=True)


def build_loss(name: str) -> AdversarialLoss:
    return LOSSES.build(name)


__all__ = ["AdversarialLoss", "LOSSES", "build_loss"]
