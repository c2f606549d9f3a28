"""Mode metrics on hand-built point sets with known answers; Stacked-MNIST helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from steadygan.data import grid25_modes, ring8_modes, sample_mixture
from steadygan.metrics import make_stacked_mnist, mode_metrics, predict_triples, stacked_mode_metrics

RING_STD = 0.01


def _at_distance(centre: torch.Tensor, r: float, angle: float) -> torch.Tensor:
    return centre + r * torch.tensor([math.cos(angle), math.sin(angle)])


def test_all_eight_modes_evenly():
    modes = ring8_modes()
    points = modes.repeat(10, 1)
    out = mode_metrics(points, modes, RING_STD)
    assert out["modes_recovered"] == 8
    assert out["high_quality_fraction"] == 1.0
    assert out["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_one_mode_only_gives_log_k():
    modes = ring8_modes()
    g = torch.Generator().manual_seed(0)
    points = modes[3] + 0.5 * RING_STD * torch.randn(2500, 2, generator=g).clamp(-3, 3)
    out = mode_metrics(points, modes, RING_STD)
    assert out["modes_recovered"] == 1
    assert out["high_quality_fraction"] == 1.0
    assert out["kl_to_uniform"] == pytest.approx(math.log(8), rel=1e-12)


def test_off_mode_noise_is_not_high_quality():
    modes = ring8_modes()
    g = torch.Generator().manual_seed(1)
    points = 0.3 * torch.randn(500, 2, generator=g)  # inside the ring, > 0.1 from every mode
    points = points[points.norm(dim=1) < 0.8]
    out = mode_metrics(points, modes, RING_STD)
    assert out["modes_recovered"] == 0
    assert out["high_quality_fraction"] == 0.0
    assert math.isnan(out["kl_to_uniform"])


def test_exact_counts_around_the_three_std_threshold():
    modes = ring8_modes()
    points = torch.stack([
        _at_distance(modes[0], 2.9 * RING_STD, 0.3),   # HQ, mode 0
        _at_distance(modes[0], 2.5 * RING_STD, 2.0),   # HQ, mode 0
        _at_distance(modes[0], 0.0, 0.0),              # HQ, mode 0
        _at_distance(modes[1], 3.1 * RING_STD, 1.0),   # nearest is mode 1, but not HQ
        _at_distance(modes[1], 3.5 * RING_STD, 4.0),   # not HQ
        _at_distance(modes[5], 1.0 * RING_STD, 5.0),   # HQ, mode 5
    ]).double()
    out = mode_metrics(points, modes, RING_STD)
    assert out["modes_recovered"] == 2
    assert out["high_quality_fraction"] == pytest.approx(4 / 6, rel=1e-15)
    # HQ histogram (3/4 on one mode, 1/4 on another) against uniform over 8 modes.
    assert out["kl_to_uniform"] == pytest.approx(0.75 * math.log(0.75 * 8) + 0.25 * math.log(0.25 * 8), rel=1e-12)


def test_true_grid_samples_follow_the_gaussian_rates():
    # A sample of the true mixture: within 3 std of its own mean with probability
    # 1 - exp(-9/2) (chi-square, 2 dof); the multinomial KL to uniform has mean (K-1)/(2N).
    points, _ = sample_mixture("grid25", 2500, seed=0)
    out = mode_metrics(points, grid25_modes(), 0.05)
    p = 1 - math.exp(-4.5)
    assert out["modes_recovered"] == 25
    assert abs(out["high_quality_fraction"] - p) < 4 * math.sqrt(p * (1 - p) / 2500)
    assert out["kl_to_uniform"] < 4 * 24 / (2 * 2500 * p)


def test_stacked_mnist_channels_are_independent_digits_with_their_codes():
    labels = torch.arange(10).repeat(5)
    images = (labels * 20).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    stacked, codes = make_stacked_mnist(images, labels, n=3000, seed=0)
    assert stacked.shape == (3000, 3, 4, 4) and stacked.dtype == torch.uint8
    digits = stacked[:, :, 0, 0].long() // 20   # each image's pixel value encodes its digit
    assert torch.equal(codes, digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2])
    assert len(codes.unique()) > 900            # 1,000 modes, drawn independently per channel
    again, codes2 = make_stacked_mnist(images, labels, n=3000, seed=0)
    assert torch.equal(again, stacked) and torch.equal(codes2, codes)
    # predict_triples applies a per-channel classifier: here, one reading the pixel value.
    triples = predict_triples(lambda x: x[:, 0, 0, 0].long() // 20, stacked)
    assert torch.equal(triples, digits)


def test_stacked_mode_metrics():
    every = torch.arange(1000)
    out = stacked_mode_metrics(every)
    assert out["modes"] == 1000 and out["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    one = stacked_mode_metrics(torch.full((50,), 427))
    assert one["modes"] == 1 and one["kl_to_uniform"] == pytest.approx(math.log(1000), rel=1e-12)
    triples = np.array([[4, 2, 7], [4, 2, 7], [0, 0, 1], [9, 9, 9]])
    out = stacked_mode_metrics(triples)
    q = np.array([0.5, 0.25, 0.25])
    assert out["modes"] == 3
    assert out["kl_to_uniform"] == pytest.approx(float(np.sum(q * np.log(q * 1000))), rel=1e-12)
    assert stacked_mode_metrics(np.array([427, 427, 1, 999])) == out


def test_triples_become_codes_hundreds_tens_units():
    # Codes 123 and 223 are two modes; reading the wrong channel would merge them.
    assert stacked_mode_metrics(np.array([[1, 2, 3], [2, 2, 3]]))["modes"] == 2
    assert stacked_mode_metrics(np.array([[1, 2, 3], [1, 3, 3]]))["modes"] == 2
    assert stacked_mode_metrics(np.array([[1, 2, 3], [1, 2, 4]]))["modes"] == 2


def test_stacked_codes_outside_the_mode_range_are_refused():
    assert stacked_mode_metrics(np.array([999]))["modes"] == 1
    for bad in ([1000], [-1], [-1, 5]):
        with pytest.raises(ValueError, match=r"mode codes must lie in \[0, 1000\)"):
            stacked_mode_metrics(np.array(bad))


def test_a_point_exactly_three_std_from_its_mode_is_high_quality():
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    out = mode_metrics(torch.tensor([[1.5, 0.0], [0.0, 1.5000001]]), modes, std=0.5)  # 1.5 = 3 x 0.5 exactly
    assert out["high_quality_fraction"] == 0.5 and out["modes_recovered"] == 1


def test_points_of_the_wrong_dimension_are_refused_by_name():
    with pytest.raises(ValueError, match=r"points must be \(N, 2\) \(got \(4, 3\)\)"):
        mode_metrics(torch.zeros(4, 3), ring8_modes(), 0.01)
    with pytest.raises(ValueError, match=r"points must be \(N, 2\) \(got \(4,\)\)"):
        mode_metrics(torch.zeros(4), ring8_modes(), 0.01)


def test_no_points_give_nan_shares_not_an_error():
    out = mode_metrics(torch.zeros(0, 2), ring8_modes(), 0.01)
    assert out["modes_recovered"] == 0 and math.isnan(out["high_quality_fraction"]) and math.isnan(out["kl_to_uniform"])


def test_make_stacked_mnist_errors():
    labels = torch.arange(10)
    with pytest.raises(TypeError, match="^make_stacked_mnist expects uint8 images$"):
        make_stacked_mnist(torch.zeros(10, 1, 4, 4), labels, 5)
    with pytest.raises(ValueError, match=r"expected single-channel images \(got 3 channels\)"):
        make_stacked_mnist(torch.zeros(10, 3, 4, 4, dtype=torch.uint8), labels, 5)
    with pytest.raises(ValueError, match="9 images but 10 labels"):
        make_stacked_mnist(torch.zeros(9, 4, 4, dtype=torch.uint8), labels, 5)
    three_d = make_stacked_mnist(torch.zeros(10, 4, 4, dtype=torch.uint8), labels, 5)[0]
    assert three_d.shape == (5, 3, 4, 4)


def test_make_stacked_mnist_default_seed_is_zero():
    labels = torch.arange(10).repeat(3)
    images = (labels * 20).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    assert torch.equal(make_stacked_mnist(images, labels, 50)[1], make_stacked_mnist(images, labels, 50, seed=0)[1])


def test_each_channel_is_classified_alone_and_a_small_hundreds_digit_stays_a_valid_code():
    images = torch.stack([torch.full((2, 4, 4), float(v)) for v in (7, 0, 3)], 1)  # channels 7, 0, 3
    images[1, 1] = 9.0

    def classify(x):
        assert x.shape[1:] == (1, 4, 4)  # one channel at a time
        return x.flatten(1).mean(1).round().long()

    assert predict_triples(classify, images).tolist() == [[7, 0, 3], [7, 9, 3]]
    assert stacked_mode_metrics(np.array([[0, 9, 9], [0, 0, 1]]))["modes"] == 2  # codes 99 and 1
