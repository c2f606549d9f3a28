"""Score a trained generator: distribution metrics against the data, with a real-data floor.

Image data: FID, KID, precision/recall and density/coverage between n generated samples and
n samples of the train split, all on one feature extractor. Each is reported beside its
*floor*, the same metric between the train split and the test split (same n, or the whole
test split when it is smaller; the result records both counts): two real
samples of one distribution do not score 0 (FID is biased upward at finite n, PR/DC have
sampling noise), so a GAN value means little without the value real data gets.

Stacked data (``data.name=stacked``): the image metrics on per-channel classifier features,
plus the Stacked-MNIST mode count over 1000 digit triples and its KL to uniform, on 26,000
samples by default (the protocol of Metz et al. 2017 / Srivastava et al. 2017); the floor is
the same count on as many real stacked images.

2-D toy data: the mode metrics (PacGAN/VEEGAN protocol, 2,500 samples), with the floor
computed on the same number of true mixture samples.

Everything is deterministic given ``seed`` and leaves the global RNGs alone, so it can run
inside a training loop without changing the run. Sample order and batch size do not
change the numbers beyond floating-point rounding.

A metric knows a generator only through :class:`Generative` (draw n samples from a seed,
optionally for given classes; how many classes it has), as torch-fidelity's
``GenerativeModelBase`` does: this package imports no config, no run directory and no
trainer. Rebuilding a trained run and scoring it is ``steadygan.training.evaluation``'s.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Protocol, runtime_checkable

import numpy as np
import torch

from ..core.pair import balanced_labels
from ..data import InMemoryData, dataset_protocol, load_dataset, mixture, sample_mixture, to_uint8_images
from ..errors import ConfigError
from .conditional import class_agreement, class_coverage, class_histogram, intra_class_fid
from .diversity import class_diversity, collapse_flags, per_class_prdc, summarise_per_class
from .features import ClassifierExtractor, FeatureExtractor, StackedExtractor, build_extractor_for
from .fid import fid, frechet_distance, gaussian_stats
from .kid import kid
from .modes import mode_metrics, stacked_mode_metrics
from .prdc import prdc
from .stats import ReferenceStats


@runtime_checkable
class Generative(Protocol):
    """What the metrics need of a generator (a trained run's, or any model a user wraps)."""

    @property
    def num_classes(self) -> int:
        """Classes it generates on request; 0 for an unconditional generator."""

    def sample(self, n: int, seed: int = 0, batch_size: int = 256, labels: torch.Tensor | None = None,
               part: tuple[int, int] = (0, 1)) -> torch.Tensor:
        """Part ``part[0]`` of ``part[1]`` contiguous chunks of n samples drawn from noise seeded by
        ``seed``: images in [-1, 1] (N, C, H, W) or points (N, 2); sample i of class ``labels[i]``
        (default: :func:`~steadygan.core.pair.balanced_labels`) when conditional."""


def _single_process(obj: Any) -> list[Any]:
    return [obj]


IMAGE_METRICS = ("fid", "kid", "pr", "dc")
IMAGE_SAMPLES = 10_000
TOY_SAMPLES = 2_500          # the PacGAN / VEEGAN protocol
STACKED_SAMPLES = 26_000     # the Stacked-MNIST protocol
DEFAULT_SAMPLES = {"image": IMAGE_SAMPLES, "stacked": STACKED_SAMPLES, "mixture": TOY_SAMPLES}
METRICS_FILE = "metrics.json"

# Display order and names of the numbers each metric group produces.
_COLUMNS = {"fid": ["fid"], "kid": ["kid", "kid_std"], "pr": ["precision", "recall"],
            "dc": ["density", "coverage"]}
_TOY_COLUMNS = ["modes_recovered", "high_quality_fraction", "kl_to_uniform"]


# Fewest samples each metric needs: k-NN radii need k + 1 points (precision/recall k = 3,
# density/coverage k = 5); a covariance or an MMD needs two.
MIN_SAMPLES = {"fid": 2, "kid": 2, "pr": 4, "dc": 6}


def check_sample_count(n: int | None, metrics: Iterable[str]) -> None:
    """ConfigError unless ``n`` (None = the default) is enough for every metric in ``metrics``."""
    need = max((MIN_SAMPLES.get(m, 2) for m in metrics), default=1)  # no metric: 2-D mode counts
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < need):
        raise ConfigError(f"{n!r} samples is too few for {', '.join(metrics)}: at least {need} are needed "
                          "(10,000 is the usual protocol for images, 2,500 for 2-D data)")


def check_metrics(metrics: Iterable[str], what: str = "metrics") -> tuple[str, ...]:
    """The metric names as a tuple; ConfigError naming the valid ones when one is unknown or none given."""
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in IMAGE_METRICS]
    if unknown or not metrics:
        raise ConfigError(f"{what}: unknown {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(IMAGE_METRICS)}")
    return metrics


def _subset(data: InMemoryData, n: int, seed: int) -> torch.Tensor:
    """Indices of n samples drawn without replacement by a private generator (all if fewer)."""
    if n >= len(data):
        return torch.arange(len(data))
    return torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values


def score_features(real: torch.Tensor, other: torch.Tensor, metrics: tuple[str, ...], seed: int = 0,
                   kid_subsets: int = 100, kid_subset_size: int = 1000,
                   real_gaussian: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
    """The image metrics of ``other`` against ``real``, from (N, D) features.

    ``real_gaussian``: the (mean, covariance) of ``real`` when already known (a statistics
    file); FID is then the same number without recomputing them.
    """
    out: dict[str, float] = {}
    if "fid" in metrics:
        out["fid"] = fid(real, other) if real_gaussian is None else \
            frechet_distance(*real_gaussian, *gaussian_stats(other))
    if "kid" in metrics:
        out["kid"], out["kid_std"] = kid(real, other, kid_subsets, kid_subset_size, seed)
        if len(real) <= kid_subset_size and len(other) <= kid_subset_size:
            del out["kid_std"]  # every subset is both whole sets: a spread of 0 that says nothing
    if "pr" in metrics or "dc" in metrics:
        scores = prdc(real, other)
        for group in ("pr", "dc"):
            if group in metrics:
                out.update({k: scores[k] for k in _COLUMNS[group]})
    return out


def sample_caveats(n_real: int, n_generated: int, dim: int, metrics: Iterable[str],
                   kid_subset_size: int = 1000) -> list[str]:
    """What a result on this few samples cannot say, in words (shown beside the numbers)."""
    caveats, n = [], min(n_real, n_generated)
    if "fid" in metrics and n < dim:
        caveats.append(f"FID from {n} samples in {dim} feature dimensions: the covariances are singular and FID "
                       f"is biased upward; compare it only with FID at the same n (at least {dim}; 10,000 is "
                       "the usual protocol)")
    if "kid" in metrics and max(n_real, n_generated) <= kid_subset_size:
        caveats.append(f"KID from {n_real} and {n_generated} samples, at most its subset size {kid_subset_size}: "
                       "every subset is the whole set, so kid_std (the spread over subsets) is left out")
    return caveats


class Evaluator:
    """Extractor, real features and the real-vs-real floor, built once, reused per generator.

    For periodic evaluation during training build one Evaluator and call ``evaluate`` at
    each evaluation step: the classifier and the real features are then computed once.
    """

    def __init__(self, dataset: str, root: str | None = None, resolution: int = 28, channels: int = 1,
                 metrics: Iterable[str] = IMAGE_METRICS, n: int | None = None,
                 extractor: str | FeatureExtractor = "classifier", extractor_options: dict[str, Any] | None = None,
                 seed: int = 0, batch_size: int = 256, kid_subsets: int = 100, kid_subset_size: int = 1000,
                 conditional: bool = False) -> None:
        self.dataset, self.root = dataset, root
        self.conditional = conditional  # also class agreement and intra-class FID (needs labels)
        self.resolution, self.channels = resolution, channels
        self.protocol = dataset_protocol(dataset)  # "image", "stacked" or "mixture"
        self.metrics = check_metrics(metrics)
        check_sample_count(n, () if self.protocol == "mixture" else self.metrics)
        self.n = n if n is not None else DEFAULT_SAMPLES[self.protocol]
        self.seed, self.batch_size = seed, batch_size
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self.extractor_spec, self.extractor_options = extractor, dict(extractor_options or {})
        self._extractor: FeatureExtractor | None = None
        self._reference: dict[str, Any] | None = None

    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:
            # Building a network initialises its layers from the global RNG; inside a training
            # run that would shift every later random draw (and differ between a cache hit and
            # a miss). Forked, the training RNG is exactly where it was.
            with torch.random.fork_rng(devices=[]):
                self._extractor = self._build_extractor()
        return self._extractor

    def _build_extractor(self) -> FeatureExtractor:
        if isinstance(self.extractor_spec, FeatureExtractor):
            return self.extractor_spec
        recipe = self.extractor_recipe()
        return build_extractor_for(**{k: v for k, v in recipe.items() if k != "options"},
                                   **self.extractor_options)

    def extractor_recipe(self) -> dict[str, Any] | None:
        """How to build this evaluator's extractor again (``build_extractor_for`` arguments, the
        options apart from the device), or None when it was handed a built extractor."""
        if isinstance(self.extractor_spec, FeatureExtractor):
            return None
        # The classifier is trained on this run's data, at its resolution.
        return {"name": self.extractor_spec, "dataset": self.dataset, "root": self.root,
                "resolution": self.resolution, "channels": self.channels,
                "options": {k: v for k, v in self.extractor_options.items() if k != "device"}}

    def features(self, samples: torch.Tensor) -> torch.Tensor:
        return self.extractor(samples, self.batch_size)

    def reference_stats(self) -> ReferenceStats:
        """The real features (train subset) as a statistics file's content (see stats.py)."""
        if self.protocol == "mixture":
            raise ConfigError(f"'{self.dataset}' is 2-D points: there are no feature statistics to save")
        ref = self.reference()
        source = {"kind": "dataset", "name": self.dataset, "root": self.root, "split": "train",
                  "n": ref["n_real"], "seed": self.seed}
        return ReferenceStats.from_features(ref["real"], self.extractor, self.extractor_recipe(),
                                            (self.channels, self.resolution, self.resolution), source)

    def reference(self) -> dict[str, Any]:
        """Real features (train subset) and the floor (train subset vs test subset), cached."""
        if self._reference is None:
            if self.protocol == "mixture":
                modes, std = mixture(self.dataset)
                points, _ = sample_mixture(self.dataset, self.n, self.seed + 1)
                self._reference = {"floor": mode_metrics(points, modes, std), "n_real": self.n}
            else:
                train = load_dataset(self.dataset, self.root, "train", self.resolution, self.channels)
                test = load_dataset(self.dataset, self.root, "test", self.resolution, self.channels)
                if train.samples.shape == test.samples.shape and torch.equal(train.samples, test.samples):
                    # No separate test split (e.g. an image folder): the floor compares two
                    # disjoint random halves of the data instead of a set with itself.
                    half = min(self.n, len(train) // 2)
                    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))
                    real_i, other_i, other = perm[:half], perm[half:2 * half], train
                    note = "two disjoint halves of the data (no separate test split)"
                else:
                    real_i, other_i, other = _subset(train, self.n, self.seed), _subset(test, self.n,
                                                                                        self.seed + 1), test
                    note = "train split vs test split"
                real_x, other_x = train.samples[real_i], other.samples[other_i]
                real, floor_set = self.features(real_x), self.features(other_x)
                self._reference = {
                    "real": real, "n_real": len(real), "n_test": len(floor_set), "note": note,
                    "floor": score_features(real, floor_set, self.metrics, self.seed,
                                            self.kid_subsets, self.kid_subset_size),
                }
                if self.protocol == "stacked":
                    # Mode counts grow with n: the floor counts as many real samples as are generated.
                    self._reference["floor"].update(self._stacked_modes(real_x))
                if train.labels is not None and isinstance(self.extractor, ClassifierExtractor):
                    # Class coverage: generated classes against the data's class histogram.
                    self._reference["class_hist"] = class_histogram(train.labels, train.num_classes)
                    self._reference["floor"].update(class_coverage(self.extractor.predict(other_x),
                                                                   self._reference["class_hist"]))
                if self.conditional:
                    self._conditional_reference(train.labels[real_i], other_x, floor_set, other.labels[other_i],
                                                train.num_classes)
        return self._reference

    def class_kl(self, images: torch.Tensor) -> float | None:
        """The class KL of ``images`` (the classifier's classes against the data's histogram, as
        in :meth:`evaluate`), or None where the evaluator has no class histogram (unlabelled
        data, or an extractor that does not classify): the health probe's class signal."""
        ref = self.reference()
        if "class_hist" not in ref:
            return None
        # Rounded to 8 bits first, as evaluate() does with every sample it scores.
        return class_coverage(self.extractor.predict(to_uint8_images(images)), ref["class_hist"])["class_kl"]

    def _conditional_reference(self, real_labels: torch.Tensor | None, other_x: torch.Tensor,
                               other_features: torch.Tensor, other_labels: torch.Tensor | None,
                               num_classes: int) -> None:
        """Real-vs-real values of the conditional metrics: the classifier's accuracy on the
        floor set, the intra-class FID between the two real sets, and each class's recall
        (``floor_class_recall``); the floor set's features and labels are kept (``floor_set``)
        for per-class studies such as benchmarks/class_recall.py."""
        if real_labels is None or other_labels is None:
            raise ConfigError(f"dataset '{self.dataset}' has no labels: the conditional metrics need them")
        ref = self._reference
        ref["real_labels"] = real_labels.cpu()
        ref["num_classes"] = num_classes  # the dataset's, not the subsets': a class missing there is NaN
        ref["floor"]["intra_fid"] = intra_class_fid(ref["real"], ref["real_labels"], other_features,
                                                    other_labels.cpu(), ref["num_classes"])
        per_class = per_class_prdc(ref["real"], ref["real_labels"], other_features, other_labels.cpu(), num_classes)
        ref["floor"].update(summarise_per_class(per_class))
        ref["floor_class_recall"] = [s["recall"] for s in per_class] if per_class else None
        ref["floor_set"] = (other_features, other_labels.cpu())  # the held-out side, for per-class studies
        ref["floor"].update(class_diversity(other_features, other_labels.cpu(), ref["real"], ref["real_labels"],
                                            num_classes))
        if isinstance(self.extractor, ClassifierExtractor):
            ref["floor"]["class_agreement"] = class_agreement(self.extractor.predict(other_x), other_labels.cpu())

    def _conditional_metrics(self, model: Generative, images: torch.Tensor,
                             features: torch.Tensor) -> tuple[dict[str, float], dict[str, list] | None]:
        """The conditional metrics, and each class's recall beside its floor (None when a class
        has too few samples): which classes a low ``class_recall_min`` is about."""
        ref = self.reference()
        requested = balanced_labels(len(images), model.num_classes)
        per_class = per_class_prdc(ref["real"], ref["real_labels"], features, requested, ref["num_classes"])
        out = {"intra_fid": intra_class_fid(ref["real"], ref["real_labels"], features, requested,
                                            ref["num_classes"]),
               **summarise_per_class(per_class),
               **class_diversity(features, requested, ref["real"], ref["real_labels"], ref["num_classes"])}
        if isinstance(self.extractor, ClassifierExtractor):
            out["class_agreement"] = class_agreement(self.extractor.predict(images), requested)
        by_class = None
        if per_class and ref.get("floor_class_recall"):
            by_class = {"recall": [s["recall"] for s in per_class], "floor_recall": ref["floor_class_recall"]}
        return out, by_class

    def _stacked_modes(self, images: torch.Tensor) -> dict[str, float]:
        extractor = self.extractor
        if not isinstance(extractor, StackedExtractor):
            return {}  # another extractor was chosen: no digit classifier to count modes with
        return stacked_mode_metrics(extractor.predict_triples(images))

    def evaluate(self, model: Generative, origin: dict[str, Any] | None = None, part: tuple[int, int] = (0, 1),
                 gather: Callable[[Any], list[Any] | None] = _single_process) -> dict[str, Any] | None:
        """Metrics of ``model``'s samples (drawn from noise seeded by ``seed``) and the floor.

        ``origin``: where the samples come from (step, checkpoint, ...), copied into the result.
        Distributed (``part=(rank, world)``, ``gather``: every rank's object in rank order on the
        main process, None elsewhere): each process generates and embeds its contiguous share of
        the same n samples; the main one scores them all (the others get None)."""
        dataset = getattr(model, "dataset", None)
        if dataset is not None and dataset != self.dataset:
            raise ConfigError(f"this evaluator is for '{self.dataset}', the generator was trained on '{dataset}'")
        start = time.perf_counter()
        samples = model.sample(self.n, self.seed, self.batch_size, part=part).cpu()
        if self.protocol == "mixture":
            parts = gather(samples)
        else:
            # Rounded to uint8 like the real data: both sets take the identical path through
            # the extractor, and a saved PNG of a sample would score the same.
            images = to_uint8_images(samples)
            parts = gather((images, self.features(images)))
        if parts is None:
            return None
        result: dict[str, Any] = {"dataset": self.dataset, **(origin or {}), "seed": self.seed}
        if self.protocol == "mixture":
            result.update(self._mode_result(torch.cat(parts)))
        else:
            images, generated = (torch.cat(p) for p in zip(*parts))
            result.update(self._image_result(model, images, generated))
        result["seconds"] = round(time.perf_counter() - start, 2)
        return result

    def _mode_result(self, samples: torch.Tensor) -> dict[str, Any]:
        modes, std = mixture(self.dataset)
        ref = self.reference()
        return {"kind": "toy", "samples": {"generated": len(samples), "real": ref["n_real"]},
                "extractor": {"name": "modes", "n_modes": len(modes), "std": std},
                "metrics": mode_metrics(samples, modes, std), "floor": ref["floor"],
                "floor_note": "true mixture samples"}

    def _image_result(self, model: Generative, images: torch.Tensor, generated: torch.Tensor) -> dict[str, Any]:
        ref = self.reference()
        metrics = score_features(ref["real"], generated, self.metrics, self.seed, self.kid_subsets,
                                 self.kid_subset_size)
        if self.protocol == "stacked":
            metrics.update(self._stacked_modes(images))
        if "class_hist" in ref:
            metrics.update(class_coverage(self.extractor.predict(images), ref["class_hist"]))
        by_class = None
        if self.conditional and model.num_classes:
            conditional, by_class = self._conditional_metrics(model, images, generated)
            metrics.update(conditional)
        caveats = sample_caveats(ref["n_real"], len(generated), generated.shape[1], self.metrics,
                                 self.kid_subset_size)
        flags = collapse_flags(metrics)
        return {"kind": "image",
                "samples": {"generated": len(generated), "real": ref["n_real"], "real_test": ref["n_test"]},
                "extractor": self.extractor.record(), "metrics": metrics, "floor": ref["floor"],
                "floor_note": ref["note"], **({"by_class": by_class} if by_class else {}),
                **({"caveats": caveats} if caveats else {}),
                **({"flags": flags} if flags else {})}


def json_safe(value: Any) -> Any:
    """NaN / inf -> None (strict JSON has no NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


PAIRED_KEYS = ("l1", "psnr", "ssim")  # metrics/translation.py's scores


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table: metric, GAN value, real-vs-real floor, extractor.

    Without a floor (a reference that is a folder, an array or a statistics file) the floor
    column is left out and the last line says why.
    """
    if result.get("kind") == "toy":
        keys = _TOY_COLUMNS
        extractor = f"modes ({result['extractor']['n_modes']}, std {result['extractor']['std']})"
    else:
        keys = [k for k in ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "modes",
                            "kl_to_uniform", "class_agreement", "intra_fid", "class_recall", "class_recall_min",
                            "class_coverage", "class_diversity", "class_diversity_min", "classes_covered", "class_kl",
                            "l1", "psnr", "ssim")
                if k in result["metrics"]]
        keys += [k for k in result["metrics"] if k.endswith(("_AtoB", "_BtoA"))]  # a CycleGAN run's, per direction
        ex = result["extractor"]
        extractor = f"{ex['name']} ({ex['weights_sha256'][:12]})"
    floor = result.get("floor")

    def by(k: str) -> str:  # paired translation scores compare pixels with each input's own target
        if k.startswith(("cycle_l1_", "silhouette_iou_")):
            return "pixels, against each input"
        return "pixels, against each target" if k in PAIRED_KEYS else extractor

    if floor is None:
        rows = [("metric", "GAN", "extractor")]
        rows += [(k, _fmt(result["metrics"].get(k)), by(k)) for k in keys]
    else:
        rows = [("metric", "GAN", "real vs real", "extractor")]
        rows += [(k, _fmt(result["metrics"].get(k)), _fmt(floor.get(k)), by(k)) for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    samples = ", ".join(f"{k} {v}" for k, v in result["samples"].items())
    where = f"step {result['step']}, " if "step" in result else ""
    note = f"{'floor' if floor is not None else 'no floor'}: {result.get('floor_note', '')}"
    lines.append(f"{where}seed {result['seed']}, samples: {samples}; {note}")
    for name, scores in result.get("baselines", {}).items():
        lines.append(f"baseline {name}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in scores.items()))
    if "baselines_note" in result:
        lines.append(f"baselines: {result['baselines_note']}")
    if "by_class" in result:  # which classes a low class_recall_min is about
        pairs = zip(result["by_class"]["recall"], result["by_class"]["floor_recall"])
        lines.append("class recall (GAN / real vs real): "
                     + ", ".join(f"{k}: {_fmt(r)} / {_fmt(f)}" for k, (r, f) in enumerate(pairs)))
    lines += [f"caveat: {caveat}" for caveat in result.get("caveats", [])]
    lines += [f"flag: {flag}" for flag in result.get("flags", [])]
    return "\n".join(lines)
