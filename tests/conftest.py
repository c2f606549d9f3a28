"""Shared fixtures: tiny datasets the tests write themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from steadygan.data import write_idx


@pytest.fixture(autouse=True)
def _fast_torch():
    torch.set_num_threads(1)  # small tensors: threading costs more than it gives
    yield


def make_idx_dir(root: Path, n: int = 96, size: int = 28, seed: int = 0, gz: bool = True) -> Path:
    """An MNIST-format folder: bright squares whose position encodes the label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = np.zeros((n, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        top = 2 + int(label) * (size - 8) // 10
        images[i, top:top + 6, 4:size - 4] = 200 + rng.integers(0, 55)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(root / f"train-images-idx3-ubyte{ext}", images)
    write_idx(root / f"train-labels-idx1-ubyte{ext}", labels)
    write_idx(root / f"t10k-images-idx3-ubyte{ext}", images[: n // 2])
    write_idx(root / f"t10k-labels-idx1-ubyte{ext}", labels[: n // 2])
    return root


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    return make_idx_dir(tmp_path / "idx")
