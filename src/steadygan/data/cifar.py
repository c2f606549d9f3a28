"""CIFAR-10 "python version" batches (data_batch_1..5, test_batch) from a local folder.

The batches are pickles. Unpickling can run arbitrary code, so the reader allows only the
few globals a CIFAR batch needs (numpy array reconstruction) and refuses anything else.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    try:
        with path.open("rb") as f:
            batch = _SafeUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - a corrupt pickle can raise almost anything (Overflow, Memory, ...)
        raise DataError(f"{path}: not a readable CIFAR-10 python batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch (expected a dict, got {type(batch).__name__})")
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if (not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072
            or not isinstance(labels, (list, tuple, np.ndarray))):
        raise DataError(f"{path}: not a CIFAR-10 batch (expected 'data' of shape (N, 3072) and 'labels')")
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < 10 for v in labels):
        raise DataError(f"{path}: CIFAR-10 labels must be integers 0..9")
    return data, list(labels)


def load_cifar10(root: str | Path, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    paths = [root / n for n in names if (root / n).exists()]
    if not paths:
        raise DataError(
            f"{root}: no CIFAR-10 batches ({', '.join(names)}); set data.root to the "
            "extracted cifar-10-batches-py folder"
        )
    parts = [_read_batch(p) for p in paths]
    data = np.concatenate([d for d, _ in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([np.asarray(labels, dtype=np.int64) for _, labels in parts])
    return torch.from_numpy(data.astype(np.uint8)), torch.from_numpy(labels)
