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

from ..data import to_uint8_images
from ..errors import ConfigError
from ..files import atomic_write_text
from ..metrics import IMAGE_METRICS, METRICS_FILE, FeatureExtractor, json_safe, save_stats
from ..metrics.sources import DatasetRef, ImageSet
from .build import build_evaluator
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
    evaluator = build_evaluator(loaded.config, **kwargs)
    if stats_file is not None and evaluator.protocol == "mixture":
        evaluator.reference_stats()  # refuses before anything is computed
    result = json_safe(evaluator.evaluate(loaded, origin_of(loaded)))
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(result, indent=2, allow_nan=False) + "\n")
    if stats_file is not None:
        save_stats(stats_file, evaluator.reference_stats())
    return result


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
