"""Metrics of a class-conditional generator, as pure functions of predictions and features.

* ``class_agreement``: the share of samples generated for class k that a classifier
  assigns to class k ("does a 3 look like a 3"); on real data it is the classifier's
  accuracy, the value a perfect generator would get.
* ``class_coverage``: for any generator on labelled data, the histogram of the classes a
  classifier assigns to its samples against the data's class histogram: how many classes
  it draws at all, and the KL divergence between the two. A generator that collapsed onto
  a few classes shows it here, where an early, blurry one (low recall) does not.
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


COVERED_SHARE = 0.1  # a class counts as covered when drawn at least at 10% of its share in the data


def class_coverage(predicted: torch.Tensor, data_histogram: torch.Tensor) -> dict[str, float]:
    """``classes_covered``: classes whose share among the samples' predicted classes is at
    least ``COVERED_SHARE`` times their share in the data; ``class_kl``: KL(samples' class
    histogram || data's class histogram), in nats (0 when they match; ln K for a collapse
    onto one of K equally frequent classes). ``data_histogram``: class shares (sums to 1)."""
    data = data_histogram.double()
    if predicted.ndim != 1 or len(predicted) == 0 or data.ndim != 1 or not math.isclose(data.sum().item(), 1.0):
        raise ValueError("need 1-D predicted classes and a class histogram that sums to 1")
    counts = torch.bincount(predicted.long().cpu(), minlength=len(data)).double()
    if len(counts) > len(data):
        raise ValueError(f"predicted class {len(counts) - 1} is outside the data's {len(data)} classes")
    shares = counts / counts.sum()
    covered = ((shares >= COVERED_SHARE * data) & (data > 0)).sum().item()
    drawn = shares > 0
    kl = (shares[drawn] * (shares[drawn] / data[drawn]).log()).sum().item()
    return {"classes_covered": float(covered), "class_kl": kl}


def class_histogram(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The share of each class 0..num_classes-1 among ``labels``."""
    counts = torch.bincount(labels.long().cpu(), minlength=num_classes).double()
    return counts / counts.sum()
