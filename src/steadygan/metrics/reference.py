"""Score a set of images against any reference, on one feature extractor.

The reference is what ``sources`` made of REF:

- a dataset: its train split (n images, seeded) through the Evaluator, which also gives the
  real-vs-real floor (train split vs test split) that a run's evaluation reports;
- a folder or an array of images: those images (n of them, seeded); no floor, since there
  is no second real sample to compare them with;
- a statistics file: the saved features, their mean and covariance; no floor.

Samples are subsampled with ``seed + 1`` and the reference with ``seed``, the seeds the
floor gives the test and the train split: the test split given as samples then scores
exactly the floor.

Which extractor: ``--extractor`` (default ``classifier``; against a statistics file, the
file's own). The classifier is trained on labelled data: the dataset reference itself, or
``classifier_data`` for a folder/array reference, which has no labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data import DataError
from ..errors import ConfigError
from .evaluate import IMAGE_SAMPLES, MIN_SAMPLES, Evaluator, check_metrics, sample_caveats, score_features
from .features import FeatureExtractor, StackedExtractor, build_extractor_for
from .fid import gaussian_stats
from .modes import stacked_mode_metrics
from .sources import DatasetRef, ImageSet
from .stats import ReferenceStats, check_same_extractor

CLASSIFIER_HINT = ("the default 'classifier' extractor is a CNN trained on a labelled dataset, and {ref} has no "
                   "labels: add --classifier-data DATA (a dataset name such as fashion-mnist, an IDX or CIFAR-10 "
                   "folder, or an image folder with one sub-folder per class) to train it on, or choose "
                   "--extractor pixels, or --extractor inception --weights FILE")


@dataclass
class ExtractorChoice:
    """What the command line says about features."""

    name: str | None = None                  # --extractor; None: classifier, or a statistics file's own
    weights: str | None = None               # --weights (inception)
    device: str = "cpu"                      # where features are computed (classifier, inception)
    classifier_data: DatasetRef | None = None  # labelled data for the classifier when REF has none
    options: dict[str, Any] = field(default_factory=dict)   # further factory options (e.g. cache_dir)

    def options_for(self, name: str) -> dict[str, Any]:
        """The factory options that extractor ``name`` takes."""
        extra = {"inception": {"weights": self.weights, "device": self.device},
                 "classifier": {"device": self.device}}.get(name, {})
        return {**{k: v for k, v in extra.items() if v is not None}, **self.options}


@dataclass
class Reference:
    """The real side of a comparison: features, their Gaussian, the extractor, the floor."""

    features: torch.Tensor
    gaussian: tuple[np.ndarray, np.ndarray]
    extractor: FeatureExtractor
    recipe: dict[str, Any] | None          # how to build the extractor again (saved with the statistics)
    shape: tuple[int, int, int]            # (C, H, W) samples are compared at
    source: dict[str, Any]
    n_default: int                         # samples used when --n is not given
    floor: dict[str, float] | None = None
    floor_note: str = ""
    n_test: int | None = None
    stacked: bool = False                  # Stacked-MNIST: also count digit triples

    def stats(self) -> ReferenceStats:
        """This reference as the content of a statistics file."""
        base = ReferenceStats.from_features(self.features, self.extractor, self.recipe, self.shape, self.source)
        base.mean, base.cov = self.gaussian
        return base


def reference_shape(ref: DatasetRef | ImageSet | ReferenceStats, samples: ImageSet | None) -> tuple[int, int, int]:
    """(C, H, W) to compare at: a folder's, array's or file's own; a dataset is loaded at the
    samples' size and channels (as a run with that data.resolution / data.channels sees it)."""
    if isinstance(ref, ReferenceStats):
        return ref.shape
    if isinstance(ref, ImageSet):
        return ref.shape
    if samples is None:
        return ref.native_shape()
    c, h, w = samples.shape
    if h != w:
        raise DataError(f"{samples.source}: images are {w}x{h}; a dataset reference is compared at a square "
                        "size (crop or resize the samples to a square)")
    if h < 8:
        raise DataError(f"{samples.source}: images are {w}x{h}; at least 8x8 is needed")
    return (3 if ref.protocol == "stacked" else c, h, w)


def _recipe(name: str, data: DatasetRef | None, shape: tuple[int, int, int], options: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "dataset": None if data is None else data.name, "root": None if data is None else data.root,
            "resolution": shape[1], "channels": shape[0],
            "options": {k: v for k, v in options.items() if k != "device"}}


def _build(recipe: dict[str, Any], choice: ExtractorChoice) -> FeatureExtractor:
    # The options given now (device, a weights path on this machine) win over the saved ones.
    args = {k: v for k, v in recipe.items() if k != "options"}
    return build_extractor_for(**args, **{**(recipe.get("options") or {}), **choice.options_for(recipe["name"])})


def _label(ref: DatasetRef | ImageSet | ReferenceStats) -> str:
    if isinstance(ref, ImageSet):
        return f"the {ref.kind} {ref.source}"
    if isinstance(ref, ReferenceStats):
        return f"the statistics file {ref.path}"
    return f"dataset '{ref.name}'"


def build_reference(ref: DatasetRef | ImageSet | ReferenceStats, shape: tuple[int, int, int], choice: ExtractorChoice,
                    metrics: tuple[str, ...], n: int | None = None, seed: int = 0, batch_size: int = 256,
                    kid_subsets: int = 100, kid_subset_size: int = 1000) -> Reference:
    """Extractor and real features for ``ref`` at ``shape`` (and the floor for a dataset)."""
    if isinstance(ref, ReferenceStats):
        wanted = (ref.recipe or {}).get("name") or ref.extractor.get("name")
        if choice.name not in (None, wanted):
            check_same_extractor(ref, {"name": choice.name})  # refuse before building (or training) anything
        recipe = dict(ref.recipe) if ref.recipe else _recipe(wanted, choice.classifier_data, shape, {})
        if choice.classifier_data is not None:
            recipe.update(dataset=choice.classifier_data.name, root=choice.classifier_data.root)
        if recipe["name"] == "classifier" and recipe.get("dataset") is None:
            raise ConfigError(CLASSIFIER_HINT.format(ref=_label(ref)))
        extractor = _build(recipe, choice)
        check_same_extractor(ref, extractor.record())
        return Reference(ref.features, (ref.mean, ref.cov), extractor, recipe, shape,
                         {"kind": "stats", "path": ref.path, "made_from": ref.source},
                         n if n is not None else IMAGE_SAMPLES, floor_note="the reference is a statistics file")

    name = choice.name or "classifier"
    if isinstance(ref, DatasetRef):
        extractor: str | FeatureExtractor = name
        recipe = None
        if name == "classifier" and choice.classifier_data is not None:
            recipe = _recipe(name, choice.classifier_data, shape, choice.options_for(name))
            extractor = _build(recipe, choice)
        evaluator = Evaluator(ref.name, ref.root, resolution=shape[1], channels=shape[0], metrics=metrics, n=n,
                              extractor=extractor, extractor_options=choice.options_for(name), seed=seed,
                              batch_size=batch_size, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
        real = evaluator.reference()
        stats = evaluator.reference_stats()
        return Reference(real["real"], (stats.mean, stats.cov), evaluator.extractor,
                         recipe or evaluator.extractor_recipe(), shape, stats.source, evaluator.n, real["floor"],
                         real["note"], real["n_test"], isinstance(evaluator.extractor, StackedExtractor))

    if name == "classifier" and choice.classifier_data is None:
        raise ConfigError(CLASSIFIER_HINT.format(ref=_label(ref)))
    check_metrics(metrics)
    recipe = _recipe(name, choice.classifier_data if name == "classifier" else None, shape, choice.options_for(name))
    extractor = _build(recipe, choice)
    kept = ref.subset(n if n is not None else IMAGE_SAMPLES, seed)
    _check_count(kept, metrics)
    features = extractor(kept.images, batch_size)
    source = {**ref.describe(), "n": len(kept), "seed": seed}
    return Reference(features, gaussian_stats(features), extractor, recipe, shape, source,
                     n if n is not None else IMAGE_SAMPLES,
                     floor_note=f"the reference is a{'n' if ref.kind == 'array' else ''} {ref.kind} of images, "
                                "not a dataset with a train and a test split")


def _check_count(images: ImageSet, metrics: tuple[str, ...]) -> None:
    need = max(MIN_SAMPLES[m] for m in metrics)
    if len(images) < need:
        raise DataError(f"{images.source}: {len(images)} images are too few for {', '.join(metrics)}: "
                        f"at least {need} are needed")


def fit_samples(samples: ImageSet, reference: Reference, label: str) -> ImageSet:
    """``samples`` at the reference's channel count; their size must match it (the inception
    extractor excepted, which resizes everything to 299x299 anyway)."""
    samples = samples.with_channels(reference.shape[0], label)
    if samples.shape[1:] != reference.shape[1:] and reference.extractor.name != "inception":
        (h, w), (rh, rw) = samples.shape[1:], reference.shape[1:]
        raise DataError(f"{samples.source}: images are {w}x{h} but {label}'s are {rw}x{rh}; resize one set to "
                        "the other's size (or use --extractor inception, which resizes both to 299x299)")
    return samples


def score_images(samples: ImageSet, reference: Reference, metrics: tuple[str, ...], n: int | None = None,
                 seed: int = 0, batch_size: int = 256, kid_subsets: int = 100,
                 kid_subset_size: int = 1000) -> dict[str, Any]:
    """The metrics of ``samples`` against ``reference``, with the floor when it has one."""
    start = time.perf_counter()
    samples = samples.subset(n if n is not None else reference.n_default, seed + 1)
    _check_count(samples, metrics)
    generated = reference.extractor(samples.images, batch_size)
    scores = score_features(reference.features, generated, metrics, seed, kid_subsets, kid_subset_size,
                            real_gaussian=reference.gaussian)
    if reference.stacked:
        scores.update(stacked_mode_metrics(reference.extractor.predict_triples(samples.images)))
    counts = {"generated": len(generated), "real": len(reference.features)}
    if reference.n_test is not None:
        counts["real_test"] = reference.n_test
    caveats = sample_caveats(len(reference.features), len(generated), generated.shape[1], metrics, kid_subset_size)
    return {"kind": "image", "samples_source": samples.describe(), "reference": reference.source, "seed": seed,
            "samples": counts, "extractor": reference.extractor.record(), "metrics": scores,
            "floor": reference.floor, "floor_note": reference.floor_note,
            **({"caveats": caveats} if caveats else {}), "seconds": round(time.perf_counter() - start, 2)}
