"""Score a trained run: rebuild its generator through the builder and hand it to the metrics.

The metrics know a generator only through ``steadygan.metrics.Generative``;
:class:`~steadygan.training.sampling.LoadedGenerator` is one. This module adds what only a
run knows: its data (the reference), where the samples came from (step, checkpoint, EMA or
raw), and ``metrics.json`` in the run directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import torch

from ..core.sampler import TranslationSampler
from ..data import to_uint8_images
from ..errors import ConfigError
from ..files import atomic_write_text
from ..metrics import IMAGE_METRICS, METRICS_FILE, FeatureExtractor, json_safe, save_stats
from ..metrics.sources import DatasetRef, ImageSet
from ..metrics.translation import translation_scores
from .build import build_data, build_evaluator
from .cycle_evaluation import CycleScores
from .sampling import LoadedGenerator, load_generator


def origin_of(loaded: LoadedGenerator) -> dict[str, Any]:
    """Where a trained generator's samples come from, as the metrics' results record it."""
    return {"step": loaded.step, "checkpoint": str(loaded.checkpoint), "ema": loaded.ema}


def evaluate_generator(loaded: LoadedGenerator, metrics: Iterable[str] = IMAGE_METRICS, n: int | None = None,
                       extractor: str | FeatureExtractor = "classifier", seed: int = 0, batch_size: int = 256,
                       extractor_options: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Score a loaded generator against its dataset (see :class:`~steadygan.metrics.Evaluator`).

    ``n`` defaults to 10,000 for images and 2,500 for toy mixtures. ``extractor`` is a
    registry name (``classifier``, ``inception``, ``pixels``) or a built extractor;
    ``extractor_options`` go to its factory (e.g. ``{"weights": PATH}`` for inception).
    """
    evaluator = build_evaluator(loaded.config, metrics=metrics, n=n, extractor=extractor,
                                extractor_options=extractor_options, seed=seed, batch_size=batch_size, **kwargs)
    return evaluator.evaluate(loaded, origin_of(loaded))


def evaluate_run(run_dir: str | Path, checkpoint: str | Path | None = None, use_ema: bool = True,
                 device: str = "cpu", stats_file: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    """Evaluate a run's newest (or the given) checkpoint and write ``run_dir/metrics.json``.

    ``kwargs`` are those of :func:`evaluate_generator`. ``stats_file``: also save the
    reference (the run's data, as features of the same extractor) there, see metrics/stats.py.
    """
    run_dir = Path(run_dir)
    loaded = load_generator(run_dir, checkpoint, use_ema=use_ema, device=device)
    if loaded.two_domains:
        if stats_file is not None:
            raise ConfigError(f"{run_dir} translates between two domains: --save-stats saves a dataset's statistics")
        result = json_safe(evaluate_cycle(loaded, **_cycle_options(**kwargs)))
        atomic_write_text(run_dir / METRICS_FILE, json.dumps(result, indent=2, allow_nan=False) + "\n")
        return result
    if loaded.translates:
        if stats_file is not None:
            raise ConfigError(f"{run_dir} translates images: --save-stats saves a dataset's statistics; save them "
                              f"from the target domain instead: steadygan eval --ref {loaded.config.data.name} "
                              "--save-stats FILE")
        result = json_safe(evaluate_translation(loaded, **kwargs))
        atomic_write_text(run_dir / METRICS_FILE, json.dumps(result, indent=2, allow_nan=False) + "\n")
        return result
    evaluator = build_evaluator(loaded.config, **kwargs)
    if stats_file is not None and evaluator.protocol == "mixture":
        evaluator.reference_stats()  # refuses before anything is computed
    result = json_safe(evaluator.evaluate(loaded, origin_of(loaded)))
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(result, indent=2, allow_nan=False) + "\n")
    if stats_file is not None:
        save_stats(stats_file, evaluator.reference_stats())
    return result


def evaluate_cycle(loaded: LoadedGenerator, n: int | None = None, seed: int = 0, extractor: str = "classifier",
                   batch_size: int = 256, extractor_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A CycleGAN run's scores in each direction (training/cycle_evaluation.py), as ``steadygan
    eval`` shows them."""
    cfg = loaded.config
    scores = CycleScores(cfg, lambda split: build_data(cfg, split=split), n, seed, extractor, batch_size,
                         extractor_options)
    return scores(loaded.generator, loaded.z_dim, origin_of(loaded))


def _cycle_options(metrics: Iterable[str] = IMAGE_METRICS, **kwargs: Any) -> dict[str, Any]:
    """evaluate_run's options as a CycleGAN run takes them: its scores are fixed
    (training/cycle_evaluation.py), FID among them."""
    if "fid" not in metrics:
        raise ConfigError("a CycleGAN run is scored with FID, target share, cycle L1 and silhouette IoU in each "
                          f"direction; --metrics {','.join(metrics)} leaves FID out: leave --metrics out")
    return kwargs


def samples_from_run(run_dir: Path, n: int, seed: int = 0, checkpoint: str | None = None, use_ema: bool = True,
                     device: str = "cpu") -> tuple[ImageSet, DatasetRef, dict[str, Any]]:
    """n images from the run's generator (noise seeded by ``seed``), rounded to uint8 as a
    saved PNG would be; also the run's own data and where the images came from."""
    loaded = load_generator(run_dir, checkpoint, use_ema=use_ema, device=device)
    if loaded.info.kind != "image":
        raise ConfigError(f"{run_dir} generates 2-D points: score it against its own mixture, without --ref")
    images = to_uint8_images(loaded.sample(n, seed).cpu())
    data = DatasetRef(loaded.config.data.name, loaded.config.data.root)
    return ImageSet(images, "run", str(run_dir)), data, origin_of(loaded)


BASELINE_PAIRS = 10_000  # training pairs the nearest-neighbour baseline looks among


def evaluate_translation(loaded: LoadedGenerator, n: int | None = None, seed: int = 0,
                         **kwargs: Any) -> dict[str, Any]:
    """A translation run on its test split: the outputs' FID, precision and recall against the
    target domain (the evaluator's, with its train-vs-test floor) and their L1, PSNR and SSIM
    against each input's own target, beside the identity map's and the nearest-neighbour
    lookup's (metrics/translation.py)."""
    cfg = loaded.config
    test, train = build_data(cfg, split="test"), build_data(cfg)
    n = min(n or len(test), len(test))
    index = torch.arange(n)
    inputs, targets = test.condition_images(index), test.batch(index).x
    sampler = TranslationSampler(loaded.generator, loaded.z_dim, inputs, cfg.data.name)
    result = build_evaluator(cfg, n=n, seed=seed, conditional=False, **kwargs).evaluate(sampler, origin_of(loaded))
    pool = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:BASELINE_PAIRS]
    scores = translation_scores(sampler.sample(n, seed).cpu(), inputs, targets, train.condition_images(pool),
                                train.batch(pool).x)
    result["metrics"].update(scores["model"])
    if len(test) == len(train) and torch.equal(test.samples, train.samples):
        result.setdefault("caveats", []).append(
            "the test pairs are the training pairs (the data has no test split): the nearest-neighbour lookup "
            "finds each target exactly, and the paired scores measure fit, not generalisation")
    result["baselines"] = {"identity": scores["identity"], "nearest": scores["nearest"]}
    result["baselines_note"] = (f"identity: output = input; nearest: the target of the nearest of {len(pool)} "
                                "training inputs (pixels); L1 on the 0..1 scale, PSNR in dB")
    return result
