"""A CycleGAN run's scores (training/cycle_evaluation.py): the nearest-neighbour baseline found
by a one-by-one search over random images, where every pool member is a plausible answer."""

from __future__ import annotations

import pytest
import torch

from steadygan.data import InMemoryData
from steadygan.metrics.fid import fid
from steadygan.metrics.unpaired import silhouette_iou
from steadygan.training.build import load_config
from steadygan.training.cycle_evaluation import CycleScores


def _joint(n: int, seed: int) -> InMemoryData:
    """n joint samples (a, b) of random 16-px grey images with a bright random rectangle each."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 60, (n, 2, 16, 16), generator=g, dtype=torch.uint8)
    for i in range(n):
        for c in range(2):
            top, left, h, w = (int(v) for v in torch.randint(1, 8, (4,), generator=g))
            images[i, c, top:top + h, left:left + w] = 220
    return InMemoryData(images, None, "unpaired")


def _nearest(image: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    return pool[min(range(len(pool)), key=lambda i: (pool[i] - image).pow(2).sum().item())]


def test_the_nearest_baseline_looks_up_the_target_domain_s_training_images_and_back(tmp_path):
    cfg = load_config(None, ["data.name=unpaired", f"data.root={tmp_path}", "data.resolution=16", "data.channels=1",
                             "model.arch=cyclegan", "g.penalties=[cycle]"])
    splits = {"train": _joint(40, 0), "test": _joint(12, 1)}
    scores = CycleScores(cfg, splits.__getitem__, n=None, seed=0, extractor="pixels")
    ready = scores.prepare()
    train_a, train_b = (side.double() for side in splits["train"].samples.split(1, dim=1))
    test_a, test_b = (side.double() for side in splits["test"].samples.split(1, dim=1))
    ext = ready["extractor"]
    for direction, source, there, back_pool in (("AtoB", test_a, train_b, train_a), ("BtoA", test_b, train_a, train_b)):
        lookups = torch.stack([_nearest(x, there) for x in source])
        backs = torch.stack([_nearest(y, back_pool) for y in lookups])
        nearest = ready["nearest"]
        assert nearest[f"cycle_l1_{direction}"] == pytest.approx((backs - source).abs().mean().item() / 255)
        assert nearest[f"silhouette_iou_{direction}"] == pytest.approx(
            silhouette_iou(source / 127.5 - 1, lookups / 127.5 - 1))
        assert nearest[f"fid_{direction}"] == pytest.approx(
            fid(ext(lookups.to(torch.uint8)), ready["real"][direction]), rel=1e-6)
        assert 0 < nearest[f"silhouette_iou_{direction}"] < 1 and nearest[f"cycle_l1_{direction}"] > 0
    assert ready["nearest"]["fid"] == pytest.approx((ready["nearest"]["fid_AtoB"] + ready["nearest"]["fid_BtoA"]) / 2)
