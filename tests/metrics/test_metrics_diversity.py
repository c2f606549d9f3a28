"""Diversity and per-class recall/coverage against hand-computed values on fixed features."""

from __future__ import annotations

import math

import pytest
import torch

from steadygan.metrics.diversity import (
    class_diversity,
    diversity_ratio,
    mean_pairwise_distance,
    per_class_recall_coverage,
)


def test_mean_pairwise_distance_by_hand():
    # Three points on a line at 0, 3, 4: distances 3, 4, 1 -> mean over the three pairs 8/3.
    x = torch.tensor([[0.0], [3.0], [4.0]])
    assert mean_pairwise_distance(x) == pytest.approx(8 / 3)
    # A right triangle: 3, 4, 5.
    assert mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])) == pytest.approx(4.0)
    assert mean_pairwise_distance(torch.ones(5, 3)) == 0.0  # identical samples
    assert math.isnan(mean_pairwise_distance(torch.ones(1, 3)))
    images = torch.zeros(2, 1, 2, 2)
    images[1] = 1.0
    assert mean_pairwise_distance(images) == pytest.approx(2.0)  # flattened: sqrt(4)


def test_a_subset_is_drawn_by_the_seed_alone():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    a, b = mean_pairwise_distance(x, max_n=20, seed=1), mean_pairwise_distance(x, max_n=20, seed=1)
    assert a == b and a != mean_pairwise_distance(x, max_n=20, seed=2)
    chosen = x[torch.randperm(50, generator=torch.Generator().manual_seed(1))[:20]]
    assert a == pytest.approx(mean_pairwise_distance(chosen))  # the seeded draw, then the mean
    assert mean_pairwise_distance(x, max_n=50) == mean_pairwise_distance(x, max_n=1000)  # all rows either way


def test_diversity_ratio_is_one_for_the_data_and_zero_for_one_image():
    real = torch.tensor([[0.0], [3.0], [4.0]])
    assert diversity_ratio(real * 2, real) == pytest.approx(2.0)
    assert diversity_ratio(torch.full((4, 1), 3.0), real) == 0.0
    assert math.isnan(diversity_ratio(real, torch.ones(3, 1)))  # a real set without variety: no scale


def test_class_diversity_sees_a_class_that_draws_one_image():
    real = torch.tensor([[0.0], [2.0], [10.0], [14.0]])
    real_labels = torch.tensor([0, 0, 1, 1])
    generated = torch.tensor([[1.0], [2.0], [12.0], [12.0]])  # class 0: distance 1 (real 2); class 1: collapsed
    labels = torch.tensor([0, 0, 1, 1])
    out = class_diversity(generated, labels, real, real_labels, 2)
    assert out == {"class_diversity": pytest.approx(0.25), "class_diversity_min": 0.0}
    out = class_diversity(generated, torch.tensor([0, 0, 0, 1]), real, real_labels, 2)
    assert math.isnan(out["class_diversity"]) and math.isnan(out["class_diversity_min"])


def test_per_class_recall_and_coverage_by_hand():
    # Class 0's real features: 0..5 on a line; class 1's: 100..105. Generated class 0 covers only
    # 0..2 (its three points), class 1 all of its own. Recall (k=3): a real point counts when
    # within the 3rd-neighbour radius of some generated point.
    real = torch.tensor([[float(v)] for v in range(6)] + [[100.0 + v] for v in range(6)])
    real_labels = torch.tensor([0] * 6 + [1] * 6)
    gen = torch.tensor([[0.0], [0.5], [1.0], [1.5], [2.0], [2.5]] + [[100.0 + v] for v in range(6)])
    out = per_class_recall_coverage(real, real_labels, gen, real_labels, 2)
    # Class 0: generated radii (3rd neighbour) 1.5, 1.0, 1.0, 1.0, 1.0, 1.5: real 0..4 inside, 5 not -> 5/6.
    # Coverage (k=5, real balls): real radii 5,4,3,3,4,5 each hold a generated point -> 1.
    assert out["class_recall"] == pytest.approx((5 / 6 + 1) / 2)
    assert out["class_recall_min"] == pytest.approx(5 / 6)
    assert out["class_coverage"] == pytest.approx(1.0)
    few = per_class_recall_coverage(real, real_labels, gen[:11], real_labels[:11], 2)
    assert all(math.isnan(v) for v in few.values())  # class 1 has five generated samples: too few
