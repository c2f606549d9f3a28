"""Paired translation metrics against closed forms, the two baselines, and a translation run
scored by `steadygan eval`."""

from __future__ import annotations

import math

import pytest
import torch

from steadygan.cli import main
from steadygan.core.pair import generate
from steadygan.core.sampler import TranslationSampler
from steadygan.errors import ConfigError
from steadygan.metrics.translation import PSNR_CAP, as_output, nearest_targets, paired_scores, translation_scores
from steadygan.training.build import load_config
from steadygan.training.trainer import train


def _const(value01: float, n: int = 2, c: int = 1, side: int = 16) -> torch.Tensor:
    """An image of one grey level, given on the 0..1 scale, as [-1, 1] pixels."""
    return torch.full((n, c, side, side), value01 * 2 - 1, dtype=torch.float64)


def test_a_constant_offset_has_its_closed_form_l1_and_psnr():
    scores = paired_scores(_const(0.7), _const(0.5))
    assert scores["l1"] == pytest.approx(0.2)
    assert scores["psnr"] == pytest.approx(10 * math.log10(1 / 0.2 ** 2), rel=1e-6)


def test_ssim_of_two_flat_images_is_its_luminance_term():
    # No variance and no covariance: the contrast-structure term is C2 / C2 = 1, and what is left
    # is (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) with C1 = (0.01 * data range)^2.
    c1 = 0.01 ** 2
    expected = (2 * 0.3 * 0.6 + c1) / (0.3 ** 2 + 0.6 ** 2 + c1)
    assert paired_scores(_const(0.3), _const(0.6))["ssim"] == pytest.approx(expected, rel=1e-12)
    assert paired_scores(_const(0.3, side=8), _const(0.6, side=8))["ssim"] == pytest.approx(expected, rel=1e-12)


def test_an_exact_translation_scores_perfectly_and_shapes_must_agree():
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    assert paired_scores(x, x) == {"l1": 0.0, "psnr": PSNR_CAP, "ssim": pytest.approx(1.0)}
    with pytest.raises(ValueError, match="differ in shape"):
        paired_scores(x, x[:, :1])


def test_the_baselines_copy_the_input_or_look_up_the_nearest_training_pair():
    train_inputs = torch.stack([torch.full((1, 4, 4), v) for v in (-1.0, 0.0, 1.0)])
    train_targets = torch.stack([torch.full((3, 4, 4), v) for v in (0.1, 0.2, 0.3)])
    inputs = torch.stack([torch.full((1, 4, 4), v) for v in (0.9, -0.8, 0.2)])
    assert torch.equal(nearest_targets(inputs, train_inputs, train_targets)[:, 0, 0, 0], torch.tensor([0.3, 0.1, 0.2]))
    assert as_output(inputs, train_targets).shape == (3, 3, 4, 4)
    targets = train_targets[[2, 0, 1]]
    scores = translation_scores(targets, inputs, targets, train_inputs, train_targets)
    assert scores["model"]["l1"] == 0 and scores["nearest"]["l1"] == 0 and scores["identity"]["l1"] > 0


def test_the_translation_sampler_translates_its_inputs_in_order_with_seeded_noise():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 1)
    g = lambda z, a: net(a) + z[:, :1, None, None]  # noqa: E731 - a generator that uses both
    module = torch.nn.Module()
    module.forward, module.net = g, net
    inputs = torch.randn(5, 1, 4, 4)
    sampler = TranslationSampler(module, 2, inputs)
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(sampler.sample(4, seed=3), generate(module, z, inputs[:4]))
    assert torch.allclose(sampler.sample(4, seed=3, part=(1, 2)), generate(module, z[2:], inputs[2:4]))
    with pytest.raises(ConfigError, match="6 translations asked for, but only 5"):
        sampler.sample(6)
    with pytest.raises(ConfigError, match="not classes"):
        sampler.sample(2, labels=torch.tensor([0, 1]))


@pytest.mark.slow
def test_eval_scores_a_translation_run_against_its_targets_and_both_baselines(tmp_path, idx_dir, capsys):
    cfg = load_config(None, [
        "data.name=edges2fashion", f"data.root={idx_dir}", "data.batch_size=16", "model.arch=pix2pix",
        "model.width=8", "model.z_dim=8", "train.steps=2", "train.progress=false", f"train.out_dir={tmp_path}"])
    run = train(cfg).run_dir
    assert main(["eval", str(run), "--n", "40", "--metrics", "fid,pr"]) == 0
    out = capsys.readouterr().out
    for line in ("l1 ", "psnr ", "ssim ", "baseline identity: l1", "baseline nearest: l1"):
        assert line in out
    assert "generated 40" in out


# --- unpaired (CycleGAN) -----------------------------------------------------------------------------

def test_target_share_counts_the_predictions_of_the_target_class():
    from steadygan.metrics.unpaired import target_share

    assert target_share(torch.tensor([9, 9, 7, 2]), 9) == 0.5
    assert target_share(torch.tensor([7, 7]), 9) == 0.0


def test_the_silhouette_is_what_differs_from_the_border_and_its_iou_by_hand():
    from steadygan.metrics.unpaired import foreground, silhouette_iou

    dark = torch.full((1, 1, 6, 6), -1.0)
    square = dark.clone()
    square[..., 1:4, 1:4] = 1.0               # 9 pixels on a black background
    shifted = dark.clone()
    shifted[..., 2:5, 2:5] = 1.0              # 9 pixels, 4 shared with the square
    assert foreground(square).sum() == 9
    assert silhouette_iou(square, shifted) == pytest.approx(4 / 14)
    on_white = -square                        # the same shape, dark on white: the background is the border's
    assert torch.equal(foreground(on_white), foreground(square))
    assert silhouette_iou(square, square) == 1.0 and silhouette_iou(dark, dark) == 1.0  # both empty: 1
    faint = dark.clone()
    faint[..., 1:4, 1:4] = -1.0 + 2 * 0.09    # 0.09 above the background: under FOREGROUND (0.1)
    assert foreground(faint).sum() == 0
