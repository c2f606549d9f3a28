"""pix2pix's networks (U-Net G, PatchGAN D), the pair convention with an image as the condition,
input-gradient penalties on a score map against a closed form, and the L1 term by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from steadygan.core.batch import Batch
from steadygan.core.clipping import build_clipper
from steadygan.core.losses import LOSSES
from steadygan.core.pair import GanPair, bind
from steadygan.core.penalties import (
    PENALTIES,
    build_penalty,
    l1_target_penalty,
    per_sample_sq_grad_norm,
    r1_penalty,
    wgan_gp_penalty,
)
from steadygan.core.step import Player, d_step, g_step
from steadygan.errors import ConfigError
from steadygan.models import build_models
from steadygan.models.translation import RECEPTIVE_FIELDS, PatchDiscriminator, UNetGenerator


@pytest.mark.parametrize("res", [28, 32, 64])
@pytest.mark.parametrize(("c_in", "c_out"), [(1, 1), (3, 3), (1, 3)])
def test_every_size_translates_an_image_to_one_of_the_targets_shape(res, c_in, c_out):
    torch.manual_seed(0)
    pair = build_models("pix2pix", (c_out, res, res), 8, width=8, condition_shape=(c_in, res, res))
    a = torch.rand(3, c_in, res, res) * 2 - 1
    b = pair.generate(torch.randn(3, 8), a)
    assert b.shape == (3, c_out, res, res) and b.abs().max() <= 1
    scores = pair.score(b, a)
    side = {28: 12, 32: 14, 64: 14}[res]  # 4x4 convolutions: stride 2 down to 14 (7 at 28 px), then two stride 1
    assert scores.shape == (3, side, side)
    assert pair.translates and not pair.conditional


def test_the_output_depends_on_the_input_image_and_on_the_noise():
    torch.manual_seed(0)
    g = UNetGenerator(8, 1, 1, 28, 8).eval()  # eval: dropout off, so only z and a vary
    a, z = torch.rand(2, 1, 28, 28), torch.randn(2, 8)
    with torch.no_grad():
        base = g(z, a)
        assert not torch.allclose(g(z, a.flip(0)), base)
        assert not torch.allclose(g(z.flip(0), a), base)
        assert torch.equal(g(z, a), base)


@pytest.mark.parametrize(("res", "depth"), [(28, 1), (64, 1), (64, 2)])
def test_a_patch_sees_exactly_its_receptive_field(res, depth):
    # Without normalisation (instance norm would mix every position), the gradient of one
    # interior patch's score reaches a square of the receptive field's side in the output image.
    torch.manual_seed(0)
    d = PatchDiscriminator(1, 1, res, 4, depth, norm="none")
    b = torch.randn(1, 1, res, res, requires_grad=True)
    scores = d(b, torch.zeros(1, 1, res, res))
    i = scores.shape[1] // 2
    (grad,) = torch.autograd.grad(scores[0, i, i], b)
    rows, cols = np.nonzero(grad[0, 0].numpy())
    assert rows.max() - rows.min() + 1 == RECEPTIVE_FIELDS[depth] == cols.max() - cols.min() + 1


def test_a_patchgan_that_sees_the_whole_image_is_refused():
    with pytest.raises(ConfigError, match="depth 2 sees 34 px, not less than the 28-px image"):
        build_models("pix2pix", (1, 28, 28), 8, width=8, depth=2)
    with pytest.raises(ConfigError, match="depth must be one of"):
        PatchDiscriminator(1, 1, 64, 8, depth=4)
    with pytest.raises(ConfigError, match="one size"):
        build_models("pix2pix", (1, 28, 28), 8, condition_shape=(1, 32, 32))
    for res in (48, 16):
        with pytest.raises(ConfigError, match=r"28-px images or 2\^k-px ones from 32 up"):
            UNetGenerator(8, 1, 1, res, 8)


def test_a_translation_pair_asks_for_images_of_its_condition_shape():
    pair = build_models("pix2pix", (1, 28, 28), 8, width=8)
    with pytest.raises(ValueError, match=r"translates images of shape \(1, 28, 28\).*got none"):
        pair.generate(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"got shape \(2,\)"):
        pair.generate(torch.randn(2, 8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="a class or on an image, not both"):
        GanPair(pair.generator, pair.discriminator, num_classes=10, condition_shape=(1, 28, 28))


# --- penalties on a score map ---------------------------------------------------------------------


class LinearPatchGan(nn.Module):
    """One k x k convolution of stride s on (a, b): a PatchGAN with nothing non-linear, so the
    gradient of its mean patch score has a closed form."""

    def __init__(self, channels: int, k: int, s: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, 1, k, s)

    def forward(self, b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([a, b], 1)).squeeze(1)


@pytest.mark.parametrize(("k", "s"), [(4, 2), (3, 1)])
def test_r1_on_a_patch_map_is_the_gradient_of_each_samples_mean_patch_score(k, s):
    torch.manual_seed(0)
    c, res, n, gamma = 2, 10, 3, 7.0
    d = LinearPatchGan(c, k, s).double()
    a, b = torch.randn(n, c, res, res, dtype=torch.float64), torch.randn(n, c, res, res, dtype=torch.float64)
    b.requires_grad_(True)
    value = r1_penalty(bind(d, a), b, gamma)
    # By hand: d mean_patches / d b = (1/P) sum over patches of the b-half of the kernel, placed at the patch.
    w = d.conv.weight.detach().numpy()[0, c:]          # (c, k, k): the weights that read b
    side = (res - k) // s + 1
    grad = np.zeros((c, res, res))
    for i in range(side):
        for j in range(side):
            grad[:, i * s:i * s + k, j * s:j * s + k] += w
    grad /= side * side
    assert value.item() == pytest.approx(gamma / 2 * (grad ** 2).sum(), rel=1e-12)  # the same for every sample
    # WGAN-GP's norm reads the same per-sample gradient: (||g|| - 1)^2 at any point, D being linear.
    gp = wgan_gp_penalty(bind(d, a), b.detach(), torch.randn_like(b), 1.0)
    assert gp.item() == pytest.approx((np.sqrt((grad ** 2).sum()) - 1) ** 2, rel=1e-9)


def test_a_one_logit_d_keeps_its_penalty_bit_for_bit():
    torch.manual_seed(0)
    x = torch.randn(5, 3, requires_grad=True)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    for out in (net(x).squeeze(1), net(x)):  # (N,) and (N, 1)
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        assert torch.equal(per_sample_sq_grad_norm(out, x), grad.square().sum(1))


def test_the_l1_term_is_the_mean_absolute_difference_to_each_target():
    fake, target = torch.tensor([[0.5, -1.0], [0.0, 0.25]]), torch.tensor([[0.0, 1.0], [0.5, 0.25]])
    assert l1_target_penalty(fake, target).item() == pytest.approx((0.5 + 2.0 + 0.5 + 0.0) / 4)
    term = build_penalty({"name": "l1-target"}, "g")
    assert term.weight == 100.0 and build_penalty({"name": "l1-target", "lambda": 10}, "g").weight == 10.0
    with pytest.raises(ConfigError, match="cannot be attached to the discriminator"):
        build_penalty({"name": "l1-target"}, "d")
    assert "l1-target" in PENALTIES.names()


def test_one_update_of_each_player_on_a_translation_batch():
    torch.manual_seed(0)
    pair = build_models("pix2pix", (1, 28, 28), 8, width=8)
    d = Player("D", pair.discriminator, torch.optim.Adam(pair.discriminator.parameters(), 1e-3),
               [build_penalty({"name": "r1", "gamma": 1.0}, "d")], build_clipper(None))
    g = Player("G", pair.generator, torch.optim.Adam(pair.generator.parameters(), 1e-3),
               [build_penalty({"name": "l1-target"}, "g")], build_clipper(None))
    a, b = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    batch, z = Batch(b, a), torch.randn(4, 8)
    g_before = [p.detach().clone() for p in g.params]
    stats = d_step(d, g, LOSSES.get("non-saturating").factory(), batch, z, 0)
    assert torch.isfinite(stats["Penalty/D/r1"]) and stats["Penalty/D/r1"] > 0
    assert all(torch.equal(p, q) for p, q in zip(g_before, g.params))  # D's update leaves G alone
    # The L1 term is taken between G's translation (dropout draws and all) and each input's own
    # target: the same translation, drawn from the same RNG state before the step, says its value.
    state = torch.get_rng_state()
    expected = (pair.generator(z, a) - b).abs().mean()
    torch.set_rng_state(state)
    stats = g_step(g, d, LOSSES.get("non-saturating").factory(), batch, z, 0)
    assert torch.isfinite(stats["Loss/G"]) and stats["Penalty/G/l1-target"].item() == pytest.approx(expected.item())
