"""Precision/recall and density/coverage against a direct loop over the definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steadygan.metrics import density_coverage, prdc, precision_recall


def _kth_radius(points: np.ndarray, i: int, k: int) -> float:
    others = [np.linalg.norm(points[i] - points[j]) for j in range(len(points)) if j != i]
    return sorted(others)[k - 1]


def _brute_force(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict[str, float]:
    r_pr = [_kth_radius(real, i, k_pr) for i in range(len(real))]
    r_dc = [_kth_radius(real, i, k_dc) for i in range(len(real))]
    f_pr = [_kth_radius(fake, j, k_pr) for j in range(len(fake))]
    dist = lambda a, b: np.linalg.norm(a - b)  # noqa: E731
    precision = np.mean([any(dist(f, real[i]) <= r_pr[i] for i in range(len(real))) for f in fake])
    recall = np.mean([any(dist(r, fake[j]) <= f_pr[j] for j in range(len(fake))) for r in real])
    density = sum(dist(f, real[i]) <= r_dc[i] for f in fake for i in range(len(real))) / (k_dc * len(fake))
    coverage = np.mean([any(dist(real[i], f) <= r_dc[i] for f in fake) for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force_definitions(seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(40, 5))
    fake = rng.normal(size=(33, 5)) * 0.8 + 0.7
    expected = _brute_force(real, fake, 3, 5)
    got = prdc(real, fake, k_pr=3, k_dc=5, chunk_size=7)  # several ragged chunks
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1  # the sets are a real test


def test_float32_features_far_from_the_origin_are_scored_in_float64():
    """Features with a large common offset, as float32 (what extractors return): the distance
    formula |a|^2 + |b|^2 - 2ab cancels catastrophically in float32, so the scores must be the
    brute-force ones of the same float32 values taken exactly."""
    rng = np.random.default_rng(3)
    real = (1e4 + rng.normal(size=(40, 5))).astype(np.float32)
    fake = (1e4 + rng.normal(size=(33, 5)) * 0.8 + 0.7).astype(np.float32)
    expected = _brute_force(real.astype(np.float64), fake.astype(np.float64), 3, 5)
    got = prdc(torch.from_numpy(real), torch.from_numpy(fake), k_pr=3, k_dc=5)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_chunk_size_and_sample_order_do_not_matter():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(120, 6)), rng.normal(size=(90, 6)) + 0.3
    reference = prdc(real, fake, chunk_size=1024)
    assert prdc(real, fake, chunk_size=13) == reference
    assert prdc(real[rng.permutation(120)], fake[rng.permutation(90)], chunk_size=13) == reference


def test_identical_sets_are_fully_precise_and_covered():
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(3))
    out = prdc(x, x.clone())
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["coverage"] == 1.0


def test_far_apart_sets_score_zero():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(50, 3)), rng.normal(size=(50, 3)) + 100.0
    assert prdc(real, fake) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_mode_dropping_lowers_recall_and_coverage_not_precision():
    rng = np.random.default_rng(5)
    real = np.concatenate([rng.normal(size=(150, 2)), rng.normal(size=(150, 2)) + 20])
    fake = rng.normal(size=(300, 2))  # only the first cluster
    pr = precision_recall(real, fake)
    dc = density_coverage(real, fake)
    assert pr["recall"] <= 0.5 and dc["coverage"] <= 0.5
    assert pr["precision"] > 0.9


def test_needs_more_samples_than_k():
    with pytest.raises(ValueError):
        prdc(np.zeros((3, 2)), np.zeros((10, 2)), k_pr=3)


def test_wrappers_use_their_own_k_for_both_radii_and_name_their_keys():
    g = np.random.default_rng(3)
    real, fake = g.normal(size=(5, 2)), g.normal(size=(5, 2))
    # Five samples allow k = 3 but not the other metric's default k = 5: a wrapper that
    # left the other radius at its default would fail here.
    assert precision_recall(real, fake, k=2) == {k: v for k, v in prdc(real, fake, 2, 2).items()
                                                 if k in ("precision", "recall")}
    many_real, many_fake = g.normal(size=(30, 2)), g.normal(size=(30, 2)) + 1.0
    assert precision_recall(many_real, many_fake, k=1) != precision_recall(many_real, many_fake, k=3)
    real, fake = g.normal(size=(3, 2)), g.normal(size=(3, 2))
    assert density_coverage(real, fake, k=2) == {k: v for k, v in prdc(real, fake, 2, 2).items()
                                                 if k in ("density", "coverage")}


def test_coincident_points_have_zero_radius_not_a_clamped_one():
    """Squared distances are clamped at 0 only to remove rounding below it."""
    real = np.array([[0.0, 0.0]] * 4 + [[10.0, 10.0]] * 4)  # two clusters: every k-NN radius is 0
    fake = np.array([[0.5, 0.0], [0.0, 0.0], [10.0, 10.0], [20.0, 20.0]])
    out = prdc(real, fake, k_pr=3, k_dc=3)
    assert out["precision"] == 0.5  # only the two fake points that coincide with real ones


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"features must be a \(N, D\) array \(got shape \(4,\)\)"):
        prdc(np.zeros(4), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="feature dimensions differ: 2 vs 3"):
        prdc(np.zeros((6, 2)), np.zeros((6, 3)))
    with pytest.raises(ValueError, match="k=5 nearest neighbours need more than 5 samples"):
        prdc(np.zeros((5, 2)), np.zeros((6, 2)), k_pr=3, k_dc=5)


def test_defaults_are_the_papers_k():
    """k = 3 for precision/recall (Kynkaanniemi et al. 2019), k = 5 for density/coverage (Naeem et al. 2020)."""
    g = np.random.default_rng(7)
    real, fake = g.normal(size=(40, 3)), g.normal(size=(40, 3)) + 0.3
    assert prdc(real, fake) == prdc(real, fake, 3, 5)
    assert precision_recall(real, fake) == precision_recall(real, fake, k=3)
    assert density_coverage(real, fake) == density_coverage(real, fake, k=5)


# --- closed from surviving mutants (benchmarks/mutation_module.py metrics.prdc) ------------------

def test_a_sample_exactly_on_a_ball_s_edge_is_inside_for_recall_density_and_coverage():
    # Closed balls (distance <= radius), as in Kynkaanniemi et al. 2019 and Naeem et al. 2020.
    # k = 1 on a line: every ball's squared radius is 4, and the boundary points sit at 4.
    fake, real = np.array([[0.0], [-2.0]]), np.array([[2.0], [10.0]])
    assert prdc(real, fake, k_pr=1, k_dc=1)["recall"] == 0.5  # real 2 on fake 0's edge
    real, fake = np.array([[0.0], [-2.0]]), np.array([[2.0], [20.0]])
    out = prdc(real, fake, k_pr=1, k_dc=1)
    assert out["density"] == 0.5 and out["coverage"] == 0.5  # fake 2 on real 0's edge


def test_radii_and_nearest_distances_are_kept_in_float64():
    # Squared radius of real 0: (1 + 1e-8)^2 = 1.00000002, which float32 rounds to 1.0.
    real = np.array([[0.0], [1 + 1e-8]])
    inside = np.array([[-1.000000005], [-50.0]])  # squared distance 1.00000001: inside in float64
    assert prdc(real, inside, k_pr=1, k_dc=1)["precision"] == 0.5
    outside = np.array([[-1.000000015], [-50.0]])  # 1.00000003: outside, but 1.0 in float32
    assert prdc(real, outside, k_pr=1, k_dc=1)["coverage"] == 0.0
