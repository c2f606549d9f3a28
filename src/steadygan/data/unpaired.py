"""Unpaired translation data: two domains, A and B, as joint samples for a CycleGAN pair.

A joint sample is an image of domain A and one of domain B stacked by channel, slot A first
(models/cycle.py). The images of a sample are paired at random, once, from a seeded draw:
CycleGAN's losses never compare the two images of a sample, so a fixed random pairing trains
as drawing A and B batches independently does (the sampler shuffles joint samples every
epoch). The larger domain is used in full; the smaller one's images are repeated, each as
often as the others give or take one, to the larger's count.

Folders follow CycleGAN's layout: ``trainA/``, ``trainB/`` and, for the test split,
``testA/``, ``testB/`` (images of any size, centre-cropped and resized as ``folder`` does).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DataError
from .folder import load_image_folder

PAIRING_SEED = 20_170_330  # the draw that pairs a joint sample's images (fixed: a run's data never moves)


def joint_samples(a: torch.Tensor, b: torch.Tensor, seed: int = PAIRING_SEED) -> torch.Tensor:
    """uint8 (N, 2C, H, W), N = the larger domain's count: every image of the larger domain (A
    at equal counts) once, in order, beside a randomly drawn image of the other one (each used
    N // n or N // n + 1 times)."""
    if a.shape[1:] != b.shape[1:]:
        raise DataError(f"the two domains' images differ in shape: A {tuple(a.shape[1:])}, B {tuple(b.shape[1:])}")
    if not len(a) or not len(b):
        raise DataError(f"domain {'A' if not len(a) else 'B'} has no images; unpaired translation needs both")
    g = torch.Generator().manual_seed(seed)
    n = max(len(a), len(b))

    def drawn(images: torch.Tensor) -> torch.Tensor:  # the smaller domain, to the larger's count
        order = torch.cat([torch.randperm(len(images), generator=g) for _ in range(-(-n // len(images)))])
        return images[order[:n]]

    return torch.cat([a, drawn(b)], 1) if len(a) >= len(b) else torch.cat([drawn(a), b], 1)


def load_unpaired(root: str | Path, split: str, resolution: int, channels: int) -> torch.Tensor:
    """Joint samples of ``ROOT/<split>A`` and ``ROOT/<split>B`` (split: train or test)."""
    root = Path(root)
    domains = []
    for side in "AB":
        folder = root / f"{split}{side}"
        if not folder.is_dir():
            present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            raise DataError(f"{folder}: no such folder; an unpaired set has {split}A/ and {split}B/ "
                            f"(CycleGAN's layout){f'; {root} has: ' + ', '.join(present) if present else ''}")
        domains.append(load_image_folder(folder, resolution, channels)[0])  # an empty folder is its error
    return joint_samples(*domains)
