"""Fixtures of the metrics tests: a small labelled IDX set with class-dependent stripes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from steadygan.data import write_idx


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 120
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 + 2 * int(label):4 + 2 * int(label), 4:24] = 200
    root = tmp_path / "data"
    root.mkdir()
    write_idx(root / "train-images-idx3-ubyte", images)
    write_idx(root / "train-labels-idx1-ubyte", labels)
    write_idx(root / "t10k-images-idx3-ubyte", images[:40])
    write_idx(root / "t10k-labels-idx1-ubyte", labels[:40])
    return root
