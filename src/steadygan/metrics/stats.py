"""Reference statistics files: a reference's features saved once, scored against many times.

``steadygan eval ... --save-stats FILE`` writes one with ``torch.save``; it holds only
tensors, strings, numbers, None, lists and dicts, so ``torch.load(FILE, weights_only=True)``
reads it (nothing in it can run code). Keys:

- ``format``: "steadygan-reference-stats", ``version``: 1;
- ``mean`` (D,) and ``cov`` (D, D), float64: the Gaussian FID compares against;
- ``features`` (N, D), float32: the real features themselves, which KID and the k-NN
  metrics (precision/recall, density/coverage) need;
- ``extractor``: the extractor's record (``name``, ``weights_sha256`` identifying its
  weights, ``feature_dim``, and for the classifier its dataset sha256 and version);
- ``recipe``: how to build that extractor again (name, the classifier's training data
  and image size, its options), or None;
- ``shape``: [C, H, W] of the reference images; ``source``: what they were (kind, path or
  dataset name, count, seed).

Features are only comparable under one extractor: scoring against a file made with another
extractor (another name, or other weights) is refused.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DataError
from ..errors import ConfigError
from ..files import safe_write
from .features import FeatureExtractor
from .fid import gaussian_stats

STATS_FORMAT = "steadygan-reference-stats"
STATS_VERSION = 1


@dataclass
class ReferenceStats:
    """The content of a statistics file (see the module docstring)."""

    features: torch.Tensor                 # (N, D) float32
    mean: np.ndarray                       # (D,) float64
    cov: np.ndarray                        # (D, D) float64
    extractor: dict[str, Any]              # the extractor's record
    recipe: dict[str, Any] | None          # how to rebuild the extractor
    shape: tuple[int, int, int]            # (C, H, W) of the reference images
    source: dict[str, Any]                 # what the reference was
    path: str = ""

    @classmethod
    def from_features(cls, features: torch.Tensor, extractor: FeatureExtractor, recipe: dict[str, Any] | None,
                      shape: tuple[int, ...], source: dict[str, Any]) -> ReferenceStats:
        mean, cov = gaussian_stats(features)
        return cls(features.float().cpu(), mean, cov, _plain(extractor.record()), _plain(recipe),
                   tuple(int(s) for s in shape), _plain(source))


def _plain(value: Any) -> Any:
    """A JSON round trip: only the types a weights_only load accepts (no Paths, numpy scalars)."""
    return json.loads(json.dumps(value, default=str))


def describe_extractor(record: dict[str, Any]) -> str:
    """'classifier (weights sha256 1a2b3c4d5e6f)': how errors name an extractor."""
    sha = record.get("weights_sha256")
    return f"{record.get('name', '?')}" + (f" (weights sha256 {str(sha)[:12]})" if sha else "")


def save_stats(path: str | Path, stats: ReferenceStats) -> Path:
    """Write ``stats`` to ``path`` atomically (a reader never sees half a file)."""
    payload = {
        "format": STATS_FORMAT, "version": STATS_VERSION,
        "mean": torch.from_numpy(np.ascontiguousarray(stats.mean)),
        "cov": torch.from_numpy(np.ascontiguousarray(stats.cov)),
        "features": stats.features.contiguous(),
        "extractor": stats.extractor, "recipe": stats.recipe, "shape": list(stats.shape),
        "source": stats.source, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    path = Path(path).expanduser()
    return safe_write(path, lambda p: torch.save(payload, p))  # missing folders are created


def load_stats(path: str | Path) -> ReferenceStats:
    """Read a statistics file; DataError (one line) for anything else or a damaged one."""
    path = Path(path).expanduser()
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a wrong or corrupt file can raise almost anything
        raise DataError(f"{path}: not a statistics file written by --save-stats ({type(exc).__name__}); a file "
                        "REF is such a file or an .npy/.npz array") from exc
    if not isinstance(payload, dict) or payload.get("format") != STATS_FORMAT:
        raise DataError(f"{path}: not a statistics file written by --save-stats; a file REF is such a file "
                        "or an .npy/.npz array")
    if payload.get("version") != STATS_VERSION:
        raise DataError(f"{path}: statistics format version {payload.get('version')!r}; this steadygan reads "
                        f"version {STATS_VERSION}: save the statistics again")
    try:
        features, mean, cov = payload["features"], payload["mean"], payload["cov"]
        n, d = features.shape
        if n < 2 or tuple(mean.shape) != (d,) or tuple(cov.shape) != (d, d):
            raise ValueError(f"features {tuple(features.shape)}, mean {tuple(mean.shape)}, cov {tuple(cov.shape)}")
        shape = tuple(int(s) for s in payload["shape"])
        if len(shape) != 3:
            raise ValueError(f"image shape {shape}")
        return ReferenceStats(features.float(), mean.double().numpy(), cov.double().numpy(),
                              dict(payload["extractor"]), payload.get("recipe"), shape,
                              dict(payload.get("source") or {}), str(path))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{path}: damaged statistics file ({exc}); save it again") from exc


def check_same_extractor(stats: ReferenceStats, record: dict[str, Any]) -> None:
    """ConfigError naming both extractors unless ``record`` (an extractor's ``record()``, or
    just its name before it is built) is the extractor that made ``stats``."""
    theirs = stats.extractor
    if record.get("name") == theirs.get("name") and record.get("weights_sha256") in (None,
                                                                                     theirs.get("weights_sha256")):
        return
    option = (stats.recipe or {}).get("name") or theirs.get("name")  # the --extractor value that made it
    raise ConfigError(f"{stats.path or 'the statistics file'} holds features of {describe_extractor(theirs)}, "
                      f"but this evaluation uses {describe_extractor(record)}: features of different extractors "
                      f"are not comparable (score with --extractor {option} and the weights that made the file "
                      "(a retrained classifier differs), or save the statistics again here with --save-stats)")
