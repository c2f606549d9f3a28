"""Metrics of a class-conditional generator, as pure functions of predictions and features.

* ``class_agreement``: the share of samples generated for class k that a classifier
  assigns to class k ("does a 3 look like a 3"); on real data it is the classifier's
  accuracy, the value a perfect generator would get.
* ``intra_class_fid``: FID between real and generated samples of each class, averaged over
  classes (Miyato & Koyama 2018): a generator that draws good images of the wrong class,
  or one good image per class, scores badly even when the overall FID is good.
"""

from __future__ import annotations

import math

import torch

from .fid import fid


def class_agreement(predicted: torch.Tensor, requested: torch.Tensor) -> float:
    """Fraction of samples whose predicted class is the requested one."""
    if predicted.shape != requested.shape or predicted.ndim != 1 or len(predicted) == 0:
        raise ValueError(f"need two equal-length 1-D label tensors (got {tuple(predicted.shape)} and "
                         f"{tuple(requested.shape)})")
    return (predicted.long() == requested.long()).float().mean().item()


def intra_class_fid(real: torch.Tensor, real_labels: torch.Tensor, other: torch.Tensor,
                    other_labels: torch.Tensor, num_classes: int) -> float:
    """Mean over classes of FID(real of class k, other of class k); NaN if some class has
    fewer than two samples on either side (a covariance needs two)."""
    values = []
    for k in range(num_classes):
        a, b = real[real_labels == k], other[other_labels == k]
        if len(a) < 2 or len(b) < 2:
            return math.nan
        values.append(fid(a, b))
    return sum(values) / len(values)
