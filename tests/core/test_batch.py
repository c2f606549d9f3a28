"""Batch: the unit the step receives; DataInfo: what a dataset is, stored in checkpoints."""

from __future__ import annotations

import pytest
import torch

from steadygan.core.batch import Batch, as_batch
from steadygan.data import DataInfo, InMemoryData


def test_batch_carries_samples_labels_and_mask():
    x, y, m = torch.randn(3, 1, 2, 2), torch.tensor([2, 0, 1]), torch.ones(1, 1, 2, 2)
    b = Batch(x, y, m)
    assert len(b) == 3
    moved = b.to("cpu")
    assert torch.equal(moved.x, x) and torch.equal(moved.y, y) and torch.equal(moved.mask, m)
    other = b.with_x(torch.zeros(3, 1, 2, 2))
    assert torch.equal(other.x, torch.zeros(3, 1, 2, 2)) and other.y is y and other.mask is m
    assert Batch(x).to("cpu").y is None and as_batch(x).x is x and as_batch(b) is b
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) or images \(N=3, C, H, W\); got shape \(2,\)"):
        Batch(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"got shape \(3, 1\)"):
        Batch(x, y[:, None])
    images = torch.randn(3, 2, 2, 2)  # a translation pair's condition: an image per sample
    assert Batch(x, images).y is images
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 2, 2\)"):
        Batch(x, images[:2])


def test_data_info_round_trips_and_refuses_nonsense():
    info = DataInfo("idx", "image", (1, 28, 28), 10, "image")
    assert DataInfo.from_dict(info.to_dict()) == info
    assert info.to_dict() == {"name": "idx", "kind": "image", "sample_shape": [1, 28, 28], "num_classes": 10,
                              "protocol": "image"}
    for kind, protocol in (("video", "image"), ("image", "fid")):
        with pytest.raises(ValueError, match="bad dataset description"):
            DataInfo("x", kind, (2,), 0, protocol)


def test_subset_keeps_the_first_samples_labels_and_protocol():
    data = InMemoryData(torch.arange(10.0).view(5, 2), torch.tensor([0, 1, 2, 1, 0]), "ring8", "mixture")
    first = data.subset(3)
    assert torch.equal(first.samples, data.samples[:3]) and first.labels.tolist() == [0, 1, 2]
    assert first.protocol == "mixture" and first.name == "ring8" and first.num_classes == 3
    unlabelled = InMemoryData(torch.zeros(4, 2), None, "p").subset(2)
    assert unlabelled.labels is None and unlabelled.protocol == "points" and unlabelled.num_classes == 0
