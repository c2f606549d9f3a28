"""Fixtures of the metrics tests: a small labelled IDX set with class-dependent stripes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from steadygan.data import write_idx


def write_striped_idx(root: Path, n: int = 120, n_test: int = 40) -> Path:
    """``n`` noisy images whose label k is a bright band at rows 2+2k..3+2k; the first
    ``n_test`` again as the test split (enough for the per-class floors when it is large)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 + 2 * int(label):4 + 2 * int(label), 4:24] = 200
    root.mkdir(exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte", images)
    write_idx(root / "train-labels-idx1-ubyte", labels)
    write_idx(root / "t10k-images-idx3-ubyte", images[:n_test])
    write_idx(root / "t10k-labels-idx1-ubyte", labels[:n_test])
    return root


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return write_striped_idx(tmp_path / "data")


@pytest.fixture
def striped_idx(tmp_path: Path):
    """A factory: ``striped_idx(n, n_test)`` writes the set with those sizes and returns its folder."""
    return lambda n, n_test: write_striped_idx(tmp_path / f"data-{n}-{n_test}", n, n_test)
