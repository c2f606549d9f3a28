"""Unpaired translation metrics (CycleGAN): does an output belong to the target domain, does it
keep its input's layout, and does the way back return the input.

- :func:`target_share`: the share of outputs a classifier assigns to the target domain's class
  (Fashion-MNIST's sneakers and ankle boots are two of its classifier's classes): what a
  translation must raise above the identity map's share, the inputs' own.
- :func:`silhouette_iou`: the intersection over union of the input's and the output's
  foreground, each pixel that differs from the image's background (the median of its border
  pixels) by more than a tenth of the range: how much of the input's shape survives. 1 for the
  identity map.
- the cycle's L1 (metrics/translation.py's ``paired_scores`` of the way back against the start).
"""

from __future__ import annotations

import torch
from torch import Tensor

FOREGROUND = 0.1  # of the [0, 1] range: a pixel this far from its background belongs to the object


def target_share(predicted: Tensor, target_class: int) -> float:
    """The share of ``predicted`` class indices equal to ``target_class``."""
    return (predicted == target_class).double().mean().item()


def foreground(images: Tensor) -> Tensor:
    """Boolean (N, H, W): pixels of [-1, 1] images (N, C, H, W) farther than FOREGROUND (on the
    [0, 1] scale) from the median of the image's border, on the channels' mean."""
    grey = images.float().mean(1).add(1.0).div(2.0)
    border = torch.cat([grey[:, 0], grey[:, -1], grey[:, 1:-1, 0], grey[:, 1:-1, -1]], 1)
    background = border.median(1).values.view(-1, 1, 1)
    return (grey - background).abs() > FOREGROUND


def silhouette_iou(inputs: Tensor, outputs: Tensor) -> float:
    """Mean over images of |fg(input) & fg(output)| / |fg(input) | fg(output)| (1 where both
    are empty)."""
    a, b = foreground(inputs), foreground(outputs)
    union = (a | b).flatten(1).sum(1)
    inter = (a & b).flatten(1).sum(1)
    iou = inter.double() / union.clamp_min(1).double()
    return torch.where(union > 0, iou, torch.ones_like(iou)).mean().item()
