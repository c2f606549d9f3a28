"""Stacked MNIST: three independent images of a 10-class MNIST-format set as one RGB image.

1000 modes (one per digit triple), equally likely: the standard test of mode collapse
(Metz et al. 2017, unrolled GAN; Srivastava et al. 2017, VEEGAN). Built from any
MNIST-format set, so Fashion-MNIST, which is what this machine has, gives "Stacked
Fashion-MNIST" with the same 1000-mode protocol.
"""

from __future__ import annotations

import torch


def make_stacked_mnist(images: torch.Tensor, labels: torch.Tensor, n: int,
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n three-channel images, each channel an independent uniformly drawn digit image.

    ``images`` is uint8 (N, 1, H, W) or (N, H, W) from any MNIST-format set, ``labels`` (N,)
    digits 0-9. Returns uint8 (n, 3, H, W) and labels 100*a + 10*b + c (channel order).
    """
    if images.dtype != torch.uint8:
        raise TypeError("make_stacked_mnist expects uint8 images")
    if images.ndim == 4:
        if images.shape[1] != 1:
            raise ValueError(f"expected single-channel images (got {images.shape[1]} channels)")
        images = images[:, 0]
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(images), (n, 3), generator=g)
    stacked = images[idx]  # (n, 3, H, W)
    digits = labels.long()[idx]
    return stacked, digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
