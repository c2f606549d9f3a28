"""How varied a generator's samples are, against the real data's own variety.

A generator can draw every class well and still draw one image per class: its class
agreement, class histogram and even FID look fine while the samples of a class are all alike.
These pure functions of features measure what is left of the variety:

* :func:`mean_pairwise_distance`: the mean Euclidean distance between two different samples
  of a set (on at most ``max_n`` of them, chosen by a seeded draw): 0 for a set of identical
  samples.
* :func:`diversity_ratio`: that of the generated set over that of a real set: about 1 for a
  generator as varied as the data, 0 for one that ignores its noise.
* :func:`class_diversity`: the ratio within each class (generated class-k samples against
  real class-k samples), and their mean and minimum: what a conditional generator that
  ignores z within a class loses.
* :func:`per_class_prdc` and :func:`per_class_recall_coverage`: recall (Kynkäänniemi et al. 2019, k = 3) and coverage
  (Naeem et al. 2020, k = 5) between each class's generated and real features.

They are cheap enough to run on a small probe during training (the health monitor's
diversity signal) and are the same numbers evaluation reports.
"""

from __future__ import annotations

import math

import torch

from .prdc import prdc

# A class whose samples are less than a quarter as varied as its real images: the generator
# draws the class but (nearly) ignores its noise. Evaluation flags it (see ``collapse_flags``).
LOW_DIVERSITY = 0.25


def mean_pairwise_distance(features: torch.Tensor, max_n: int = 1000, seed: int = 0) -> float:
    """Mean distance between two different rows of ``features`` (N, D); NaN below two rows."""
    x = torch.as_tensor(features).detach().to("cpu", torch.float64).flatten(1)
    if len(x) > max_n:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_n]]
    n = len(x)
    if n < 2:
        return math.nan
    d = torch.cdist(x, x)
    return (d.sum() / (n * (n - 1))).item()  # the diagonal is 0: the sum is over pairs i != j


def diversity_ratio(generated: torch.Tensor, real: torch.Tensor, max_n: int = 1000, seed: int = 0) -> float:
    """Mean pairwise distance of ``generated`` over that of ``real`` (NaN when real has none)."""
    reference = mean_pairwise_distance(real, max_n, seed)
    if not reference > 0:
        return math.nan
    return mean_pairwise_distance(generated, max_n, seed) / reference


def class_diversity(generated: torch.Tensor, generated_labels: torch.Tensor, real: torch.Tensor,
                    real_labels: torch.Tensor, num_classes: int, max_n: int = 500) -> dict[str, float]:
    """``class_diversity``: the mean over classes of the within-class diversity ratio;
    ``class_diversity_min``: the lowest class's. NaN when a class has fewer than two samples
    on either side."""
    ratios = []
    for k in range(num_classes):
        a, b = generated[generated_labels == k], real[real_labels == k]
        if len(a) < 2 or len(b) < 2:
            return {"class_diversity": math.nan, "class_diversity_min": math.nan}
        ratios.append(diversity_ratio(a, b, max_n, seed=k))
    return {"class_diversity": sum(ratios) / len(ratios), "class_diversity_min": min(ratios)}


def per_class_prdc(real: torch.Tensor, real_labels: torch.Tensor, other: torch.Tensor,
                   other_labels: torch.Tensor, num_classes: int) -> list[dict[str, float]] | None:
    """Precision, recall, density and coverage of ``other`` against ``real`` within each class,
    in class order; None when a class has too few samples for coverage's k-NN balls (6)."""
    scores = []
    for k in range(num_classes):
        a, b = real[real_labels == k], other[other_labels == k]
        if min(len(a), len(b)) < 6:  # coverage's balls reach the 5th neighbour
            return None
        scores.append(prdc(a, b))
    return scores


def summarise_per_class(scores: list[dict[str, float]] | None) -> dict[str, float]:
    """The mean over classes of recall (``class_recall``) and coverage (``class_coverage``),
    and the lowest class's recall (``class_recall_min``); NaN without per-class scores."""
    if not scores:
        return {"class_recall": math.nan, "class_recall_min": math.nan, "class_coverage": math.nan}
    recalls = [s["recall"] for s in scores]
    return {"class_recall": sum(recalls) / len(recalls), "class_recall_min": min(recalls),
            "class_coverage": sum(s["coverage"] for s in scores) / len(scores)}


def per_class_recall_coverage(real: torch.Tensor, real_labels: torch.Tensor, other: torch.Tensor,
                              other_labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Recall and coverage of ``other`` against ``real`` within each class: their means over
    classes (``class_recall``, ``class_coverage``) and the lowest class's recall
    (``class_recall_min``). NaN when a class has too few samples for its k-NN balls (6)."""
    return summarise_per_class(per_class_prdc(real, real_labels, other, other_labels, num_classes))


def collapse_flags(metrics: dict[str, float]) -> list[str]:
    """What the diversity figures in ``metrics`` say in words, when they say a run collapsed."""
    lowest = metrics.get("class_diversity_min")
    if lowest is None or not lowest < LOW_DIVERSITY:
        return []
    return [f"within-class collapse: the least varied class's samples are {lowest:.2f} as varied as its real "
            f"images (mean over classes {metrics['class_diversity']:.2f}): the generator draws the classes but "
            "ignores its noise"]
