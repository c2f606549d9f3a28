"""Adversarial losses against closed forms at known logits, and the direction each pushes G."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from steadygan.core.clipping import build_clipper
from steadygan.core.losses import LOSSES, build_loss
from steadygan.core.step import Player, g_step

REAL = [2.0, -1.0, 0.5, 3.0]
FAKE = [-0.3, 1.5, 0.0, -2.5]


def log_sigmoid(x: float) -> float:
    return math.log(1.0 / (1.0 + math.exp(-x)))


def log_one_minus_sigmoid(x: float) -> float:
    return math.log(1 - 1 / (1 + math.exp(-x)))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


# Each loss written from its paper's definition with probabilities sigma(l), in float64:
# (D's loss of (real, fake) logits, G's loss of (real, fake) logits).
CLOSED_FORMS = {
    "minimax": (lambda r, f: -mean(log_sigmoid(x) for x in r) - mean(log_one_minus_sigmoid(x) for x in f),
                lambda r, f: mean(log_one_minus_sigmoid(x) for x in f)),
    "non-saturating": (lambda r, f: -mean(log_sigmoid(x) for x in r) - mean(log_one_minus_sigmoid(x) for x in f),
                       lambda r, f: -mean(log_sigmoid(x) for x in f)),
    "wasserstein": (lambda r, f: mean(f) - mean(r), lambda r, f: -mean(f)),
    "hinge": (lambda r, f: mean(max(0.0, 1 - x) for x in r) + mean(max(0.0, 1 + x) for x in f),
              lambda r, f: -mean(f)),
    "least-squares": (lambda r, f: 0.5 * (mean((x - 1) ** 2 for x in r) + mean(x ** 2 for x in f)),
                      lambda r, f: 0.5 * mean((x - 1) ** 2 for x in f)),
    # RpGAN: D's probability that real sample i is more real than generated sample i is
    # sigma(r_i - f_i); D maximises its log, G the log of the reverse comparison.
    "relativistic": (lambda r, f: -mean(log_sigmoid(a - b) for a, b in zip(r, f)),
                     lambda r, f: -mean(log_sigmoid(b - a) for a, b in zip(r, f))),
}


def test_every_registered_loss_has_a_closed_form_here():
    assert set(LOSSES.names()) == set(CLOSED_FORMS)


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_loss_values_match_closed_forms(name):
    loss = build_loss(name)
    d_ref, g_ref = CLOSED_FORMS[name]
    real, fake = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    assert loss.d_loss(real, fake).item() == pytest.approx(d_ref(REAL, FAKE), rel=1e-12)
    assert loss.generator(fake, real).item() == pytest.approx(g_ref(REAL, FAKE), rel=1e-12)


def test_the_relativistic_loss_pairs_samples_and_asks_for_real_logits():
    loss = build_loss("relativistic")
    real, fake = torch.tensor([3.0, -3.0]), torch.tensor([-3.0, 3.0])
    # Paired, the first pair is easy for D and the second hard; unpaired means would cancel.
    assert loss.d_loss(real, fake).item() == pytest.approx(0.5 * (math.log1p(math.exp(-6)) + math.log1p(math.exp(6))))
    with pytest.raises(ValueError, match="pairs generated and real"):
        loss.generator(fake)


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_discriminator_loss_falls_as_real_and_fake_logits_separate(name):
    """Every D loss rewards D for scoring real higher and fake lower (checked with a
    margin that keeps the hinge inside its active region)."""
    loss = build_loss(name)
    real, fake = torch.tensor([0.2, -0.1]), torch.tensor([0.1, -0.2])
    wider = loss.d_loss(real + 0.3, fake - 0.3)
    assert wider.item() < loss.d_loss(real, fake).item()


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_one_generator_step_raises_the_discriminator_score_of_its_samples(name):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1), nn.Flatten(0))
    g = Player("G", G, torch.optim.SGD(G.parameters(), lr=0.05), [], build_clipper(None))
    d = Player("D", D, torch.optim.SGD(D.parameters(), lr=0.0), [], build_clipper(None))
    z = torch.randn(256, 3)
    with torch.no_grad():
        before = D(G(z)).mean().item()
    g_step(g, d, build_loss(name), torch.zeros(256, 2), z, step=0)
    with torch.no_grad():
        after = D(G(z)).mean().item()
    assert after > before
