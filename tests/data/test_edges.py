"""Edge maps (the inputs of edges2fashion) and paired data: inputs that travel with their targets."""

from __future__ import annotations

import pytest
import torch

from steadygan.data import DataError, DataInfo, InMemoryData
from steadygan.data.edges import edge_maps


def test_a_step_gives_a_line_where_the_intensity_changes_and_nowhere_else():
    image = torch.zeros(1, 1, 6, 8, dtype=torch.uint8)
    image[..., 4:] = 200  # a vertical step between columns 3 and 4
    edges = edge_maps(image)[0, 0]
    # Sobel's horizontal derivative is non-zero exactly on the two columns beside the step,
    # and equal there: both are drawn (black), the rest stays white.
    assert edges[:, 3:5].eq(0).all() and edges[:, :3].eq(255).all() and edges[:, 5:].eq(255).all()


def test_a_flat_image_has_no_edges_and_weak_gradients_are_left_out():
    assert edge_maps(torch.full((2, 3, 5, 5), 90, dtype=torch.uint8)).eq(255).all()
    image = torch.zeros(1, 1, 5, 9, dtype=torch.uint8)
    image[..., 3:] = 20    # a weak step: a tenth of the strong one
    image[..., 6:] = 220   # a strong step
    edges = edge_maps(image, threshold=0.25)[0, 0]
    assert edges[:, 2:4].eq(255).all() and edges[:, 5:7].eq(0).all()
    with pytest.raises(TypeError):
        edge_maps(torch.zeros(1, 1, 4, 4))


def test_paired_inputs_follow_their_targets_through_subset_batch_and_checkpointed_info():
    targets = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous()
    inputs = 255 - targets
    data = InMemoryData(targets, None, "pairs", conditions=inputs)
    batch = data.subset(3).batch(torch.tensor([2, 0]), conditions=True)
    assert torch.equal(batch.x[:, 0, 0, 0], torch.tensor([2, 0]) / 127.5 - 1)
    assert torch.equal(batch.y[:, 0, 0, 0], (255 - torch.tensor([2, 0])) / 127.5 - 1)
    assert data.info.condition_shape == (1, 2, 2) and data.info.paired
    assert DataInfo.from_dict(data.info.to_dict()) == data.info
    old = {"name": "x", "kind": "image", "sample_shape": [1, 2, 2], "num_classes": 0, "protocol": "image"}
    unpaired = DataInfo.from_dict(old)
    assert unpaired.condition_shape is None and "condition_shape" not in unpaired.to_dict()
    with pytest.raises(DataError, match="paired inputs must be uint8 images"):
        InMemoryData(targets, None, "pairs", conditions=inputs[:3])
    with pytest.raises(DataError, match="has no paired input images"):
        InMemoryData(targets, None, "plain").batch(torch.tensor([0]), conditions=True)
