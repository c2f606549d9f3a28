"""Unpaired translation data: joint samples of two domains (every image of the larger domain
once, the smaller one's spread evenly), CycleGAN's folder layout and its errors, and the
Fashion-MNIST sneakers and ankle boots."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from steadygan.data import DataError, load_dataset
from steadygan.data.unpaired import joint_samples


def _levels(values):
    return torch.tensor(values, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 3, 3).contiguous()


@pytest.mark.parametrize(("n_a", "n_b"), [(7, 3), (3, 7), (5, 5)])
def test_the_larger_domain_is_used_once_in_order_and_the_smaller_spread_evenly(n_a, n_b):
    a, b = _levels(range(n_a)), _levels(range(100, 100 + n_b))
    joint = joint_samples(a, b, seed=0)
    assert joint.shape == (max(n_a, n_b), 2, 3, 3)
    first, second = joint[:, 0, 0, 0].tolist(), joint[:, 1, 0, 0].tolist()
    larger, smaller = (first, second) if n_a >= n_b else (second, first)
    small_count = min(n_a, n_b)
    assert larger == sorted(larger) and len(set(larger)) == max(n_a, n_b)
    uses = Counter(smaller)
    assert len(uses) == small_count and max(uses.values()) - min(uses.values()) <= 1
    assert torch.equal(joint_samples(a, b, seed=0), joint)  # a fixed pairing
    if n_a == n_b:
        assert second != sorted(second)  # paired at random, not image i with image i


def test_joint_samples_refuse_an_empty_domain_or_two_shapes():
    with pytest.raises(DataError, match="^domain B has no images"):
        joint_samples(_levels([1, 2]), _levels([]))
    with pytest.raises(DataError, match=r"^the two domains' images differ in shape: A \(1, 3, 3\), B \(3, 3, 3\)"):
        joint_samples(_levels([1]), torch.zeros(1, 3, 3, 3, dtype=torch.uint8))


def _folders(root, counts):
    for name, (n, level) in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((10, 14), level + i, np.uint8)).save(root / name / f"{i}.png")


def test_cyclegans_folder_layout_gives_joint_samples_per_split(tmp_path):
    _folders(tmp_path, {"trainA": (4, 10), "trainB": (6, 100), "testA": (2, 50), "testB": (2, 200)})
    train = load_dataset("unpaired", str(tmp_path), "train", 8, 1)
    assert train.samples.shape == (6, 2, 8, 8) and train.conditions is train.samples
    assert set(train.samples[:, 0, 0, 0].tolist()) == {10, 11, 12, 13}
    assert train.samples[:, 1, 0, 0].tolist() == [100, 101, 102, 103, 104, 105]
    assert train.info.condition_shape == train.info.sample_shape == (2, 8, 8)
    test = load_dataset("unpaired", str(tmp_path), "test", 8, 1)
    assert sorted(test.samples[:, 1, 0, 0].tolist()) == [200, 201]


def test_a_missing_or_empty_domain_folder_is_one_line_naming_what_is_there(tmp_path):
    _folders(tmp_path, {"trainA": (2, 10), "photos": (1, 0)})
    with pytest.raises(DataError) as exc:
        load_dataset("unpaired", str(tmp_path), "train", 8, 1)
    assert str(exc.value) == (f"{tmp_path / 'trainB'}: no such folder; an unpaired set has trainA/ and trainB/ "
                              f"(CycleGAN's layout); {tmp_path} has: photos, trainA")
    (tmp_path / "trainB").mkdir()
    with pytest.raises(DataError, match=f"^{tmp_path / 'trainB'}: no images found"):
        load_dataset("unpaired", str(tmp_path), "train", 8, 1)


def test_sneakers2boots_pairs_every_sneaker_with_an_ankle_boot(idx_dir):
    from steadygan.data import DATASETS

    data = load_dataset("sneakers2boots", str(idx_dir), "train", 28, 1)
    labelled = load_dataset("idx", str(idx_dir), "train", 28, 1)
    sneakers, boots = (labelled.samples[labelled.labels == k] for k in (7, 9))  # Fashion-MNIST's classes
    assert data.samples.shape == (max(len(sneakers), len(boots)), 2, 28, 28) and data.labels is None
    larger, smaller = (sneakers, boots) if len(sneakers) >= len(boots) else (boots, sneakers)
    slot_of_larger = 0 if len(sneakers) >= len(boots) else 1
    assert torch.equal(data.samples[:, slot_of_larger:slot_of_larger + 1], larger)
    known = {bytes(img.numpy()) for img in smaller}
    assert all(bytes(img.numpy()) in known for img in data.samples[:, 1 - slot_of_larger:2 - slot_of_larger])
    assert DATASETS.get("sneakers2boots").info.get("domains")
