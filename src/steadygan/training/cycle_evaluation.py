"""Score a CycleGAN run (models/cycle.py) on its test split, each direction on its own.

For A -> B (and likewise B -> A), on the test split's distinct images of A (joint samples
repeat the smaller domain's; at most ``n``, a seeded subset) translated by G_AB:

- ``fid_AtoB``: FID of the translations against the test images of B (floor: B's training
  images against them; the identity map's: A's test images against them); ``fid``, the mean
  of the two directions', is the run's main metric (its best checkpoint, the lab report's);
- ``target_share_AtoB``: the share the feature classifier assigns to B's class (floor: the
  share of B's own test images; the identity map's: of A's) where the data names each
  domain's class in a labelled set (``sneakers2boots``: Fashion-MNIST's 7 and 9) and the
  extractor is that set's classifier;
- ``cycle_l1_AtoB``: L1 of A -> B -> A against A (0..1 pixels; the identity map's is 0);
- ``silhouette_iou_AtoB``: how much of A's shape the translation keeps (metrics/unpaired.py;
  the identity map's is 1).

Two baselines are scored the same way: the identity map (output = input) and the
nearest-neighbour lookup (output = the target domain's training image nearest to the input in
pixels, and back the same way: what a generator that memorised the target domain would give).

A run fails the lab report's rule when, at its end, its target share in either direction is not
clearly above the identity map's (by ``lab.report.aggregate.COLLAPSE_SHARE_MARGIN``; periodic
evaluation logs the identity's as ``Metric/identity_target_share_*``).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

from ..config import Config
from ..data import DATASETS, InMemoryData, to_float_images, to_uint8_images
from ..errors import ConfigError
from ..metrics.features import build_extractor_for
from ..metrics.fid import fid
from ..metrics.translation import nearest_targets, paired_scores
from ..metrics.unpaired import silhouette_iou, target_share
from ..models import domain_slots, translate_one_way

BASELINE_PAIRS = 10_000  # training images of each domain the nearest-neighbour lookup looks among
DIRECTION_SLOTS = {"AtoB": (0, 1), "BtoA": (1, 0)}  # (source slot, target slot) of a joint sample


class CycleScores:
    """The test images, the extractor and the real features of one CycleGAN run's evaluation,
    built once (on first use); calling it scores a generator."""

    def __init__(self, cfg: Config, load: Callable[[str], InMemoryData], n: int | None = None, seed: int = 0,
                 extractor: str = "classifier", batch_size: int = 256,
                 extractor_options: dict[str, Any] | None = None) -> None:
        """``load(split)``: the run's data of that split (the builder's ``build_data``)."""
        self.classes = DATASETS.get(cfg.data.name).info.get("domain_classes")  # {"dataset": ..., "A": k, "B": k}
        if extractor == "classifier" and self.classes is None:
            raise ConfigError(f"dataset '{cfg.data.name}' names no labelled set to train the feature classifier "
                              "on: score it with the pixels (or inception) extractor (eval --extractor pixels; "
                              "train.eval_extractor=pixels)")
        self.cfg, self.load, self.n, self.seed, self.batch_size = cfg, load, n, seed, batch_size
        # The target share needs class decisions: the classifier's (a pixels or Inception extractor has none).
        self.classifies = self.classes is not None and extractor == "classifier"
        self.extractor_spec, self.extractor_options = extractor, dict(extractor_options or {})
        self._ready: dict[str, Any] | None = None

    def prepare(self) -> dict[str, Any]:
        """Each domain's test images, the extractor, and per direction the real features and
        the floor's and the identity map's scores (which no generator changes)."""
        if self._ready is not None:
            return self._ready
        cfg = self.cfg
        test, train = self.load("test"), self.load("train")
        g = torch.Generator().manual_seed(self.seed)

        def distinct(images: torch.Tensor, count: int | None, split: str, side: str) -> torch.Tensor:
            # A joint sample set repeats its smaller domain's images: each image once, a seeded subset.
            unique = torch.unique(images, dim=0)
            if len(unique) < 2:
                raise ConfigError(f"the {split} split's domain {side} holds {len(unique)} distinct image(s): scoring "
                                  "a domain needs at least 2")
            return unique[torch.randperm(len(unique), generator=g)[:count or len(unique)]]

        tests = [distinct(s, self.n, "test", side) for s, side in zip(domain_slots(test.samples), "AB")]
        trains = [distinct(s, len(t), "training", side)
                  for s, t, side in zip(domain_slots(train.samples), tests, "AB")]
        pools = [distinct(s, BASELINE_PAIRS, "training", side) for s, side in zip(domain_slots(train.samples), "AB")]
        with torch.random.fork_rng(devices=[]):  # building a network must not move a training run's RNG
            ext = build_extractor_for(self.extractor_spec, dataset=None if self.classes is None else
                                      self.classes["dataset"], root=cfg.data.root, resolution=cfg.data.resolution,
                                      channels=cfg.data.channels, **self.extractor_options)
        floats = [to_float_images(t) for t in tests]
        floor, identity, nearest, real = {}, {}, {}, {}
        for direction, (src, tgt) in DIRECTION_SLOTS.items():
            real[direction] = ext(tests[tgt], self.batch_size)
            lookup = nearest_targets(tests[src], pools[tgt], pools[tgt])
            back = nearest_targets(lookup, pools[src], pools[src])
            floor[f"fid_{direction}"] = fid(ext(trains[tgt], self.batch_size), real[direction])
            identity[f"fid_{direction}"] = fid(ext(tests[src], self.batch_size), real[direction])
            nearest[f"fid_{direction}"] = fid(ext(lookup, self.batch_size), real[direction])
            if self.classifies:
                target_class = self.classes["AB"[tgt]]
                floor[f"target_share_{direction}"] = target_share(ext.predict(tests[tgt]), target_class)
                identity[f"target_share_{direction}"] = target_share(ext.predict(tests[src]), target_class)
                nearest[f"target_share_{direction}"] = target_share(ext.predict(lookup), target_class)
            identity[f"cycle_l1_{direction}"], identity[f"silhouette_iou_{direction}"] = 0.0, 1.0
            nearest[f"cycle_l1_{direction}"] = paired_scores(to_float_images(back), floats[src])["l1"]
            nearest[f"silhouette_iou_{direction}"] = silhouette_iou(floats[src], to_float_images(lookup))
        for scores in (floor, identity, nearest):  # the two directions' FIDs together: the run's main metric
            scores["fid"] = (scores["fid_AtoB"] + scores["fid_BtoA"]) / 2
        self._ready = {"tests": floats, "extractor": ext, "real": real, "floor": floor,
                       "identity": identity, "nearest": nearest, "pool": [len(p) for p in pools]}
        return self._ready

    def __call__(self, generator: nn.Module, z_dim: int, origin: dict[str, Any] | None = None) -> dict[str, Any]:
        start = time.perf_counter()
        ready = self.prepare()
        ext = ready["extractor"]
        device = next(generator.parameters()).device
        metrics = {}
        for direction, (src, tgt) in DIRECTION_SLOTS.items():
            source = ready["tests"][src]
            z = torch.randn(len(source), z_dim, generator=torch.Generator().manual_seed(self.seed)).to(device)
            output = translate_one_way(generator, z, source.to(device), direction)
            back = translate_one_way(generator, z, output, "BtoA" if direction == "AtoB" else "AtoB").cpu()
            output = output.cpu()
            as_uint8 = to_uint8_images(output)
            metrics[f"fid_{direction}"] = fid(ext(as_uint8, self.batch_size), ready["real"][direction])
            if self.classifies:
                metrics[f"target_share_{direction}"] = target_share(ext.predict(as_uint8), self.classes["AB"[tgt]])
            metrics[f"cycle_l1_{direction}"] = paired_scores(back, source)["l1"]
            metrics[f"silhouette_iou_{direction}"] = silhouette_iou(source, output)
        metrics["fid"] = (metrics["fid_AtoB"] + metrics["fid_BtoA"]) / 2
        counts = {f"test {side}": len(t) for side, t in zip("AB", ready["tests"])}
        return {"dataset": self.cfg.data.name, **(origin or {}), "seed": self.seed, "kind": "image",
                "samples": counts, "extractor": ext.record(), "metrics": metrics, "floor": ready["floor"],
                "floor_note": "the target domain's distinct training images against its distinct test images",
                "baselines": {"identity": ready["identity"], "nearest": ready["nearest"]},
                "baselines_note": "identity: output = input (each test image left in its own domain); nearest: the "
                                  "target domain's training image nearest to the input (pixels; among "
                                  f"{ready['pool'][0]} of A, {ready['pool'][1]} of B), and back the same way",
                "seconds": round(time.perf_counter() - start, 2)}
