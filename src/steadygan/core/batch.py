"""The unit of data the step, penalties, EMA refresh, sample grids and evaluation receive."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class Batch:
    """Samples with what conditions them.

    ``x``: images in [-1, 1] (N, C, H, W) or points (N, D). ``y``: the condition, present when
    the model pair is conditional: class labels (N,) int64, or images in [-1, 1] (N, C, H, W)
    for a translation pair (``x`` is then each one's target). ``mask``: 1 where a pixel is known,
    0 where it is to be generated (image completion), broadcastable to ``x``.
    """

    x: Tensor
    y: Tensor | None = None
    mask: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.y is not None and (self.y.ndim not in (1, 4) or self.y.shape[0] != n):
            raise ValueError(f"the condition must be labels of shape ({n},) or images (N={n}, C, H, W); "
                             f"got shape {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(None if t is None else t.to(device) for t in (self.x, self.y, self.mask)))

    def with_x(self, x: Tensor) -> Batch:
        """The same conditions with other samples (e.g. a generated batch for these labels)."""
        return replace(self, x=x)


def as_batch(data: Batch | Tensor) -> Batch:
    """Accept a bare tensor where a batch is expected (unconditional use from Python)."""
    return data if isinstance(data, Batch) else Batch(data)
