"""Score a CycleGAN run (models/cycle.py) on its test split, each direction on its own.

For A -> B (and likewise B -> A), on the test images of A translated by G_AB:

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

A run fails the lab report's rule when, at its end, its target share in either direction is no
better than the identity map's (periodic evaluation logs that as ``Metric/identity_target_share_*``).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

from ..config import Config
from ..core.pair import generate
from ..data import DATASETS, InMemoryData, to_uint8_images
from ..errors import ConfigError
from ..metrics.features import build_extractor_for
from ..metrics.fid import fid
from ..metrics.translation import paired_scores
from ..metrics.unpaired import silhouette_iou, target_share
from ..models import domain_slots

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
        """The test joint samples, the extractor, and per direction the real features and the
        floor's and the identity map's scores (which no generator changes)."""
        if self._ready is not None:
            return self._ready
        cfg = self.cfg
        test, train = self.load("test"), self.load("train")
        n = min(self.n or len(test), len(test))
        joint = test.batch(torch.arange(n)).x
        with torch.random.fork_rng(devices=[]):  # building a network must not move a training run's RNG
            ext = build_extractor_for(self.extractor_spec, dataset=None if self.classes is None else
                                      self.classes["dataset"], root=cfg.data.root, resolution=cfg.data.resolution,
                                      channels=cfg.data.channels, **self.extractor_options)
        g = torch.Generator().manual_seed(self.seed)
        unique = [torch.unique(s, dim=0) for s in domain_slots(train.samples)]  # a smaller domain repeats
        train_slots = [u[torch.randperm(len(u), generator=g)[:n]] for u in unique]
        floor, identity, real = {}, {}, {}
        slots = domain_slots(joint)
        for direction, (src, tgt) in DIRECTION_SLOTS.items():
            source, target = (to_uint8_images(slots[k]) for k in (src, tgt))
            real[direction] = ext(target, self.batch_size)
            floor[f"fid_{direction}"] = fid(ext(train_slots[tgt], self.batch_size), real[direction])
            identity[f"fid_{direction}"] = fid(ext(source, self.batch_size), real[direction])
            if self.classifies:
                target_class = self.classes["AB"[tgt]]
                floor[f"target_share_{direction}"] = target_share(ext.predict(target), target_class)
                identity[f"target_share_{direction}"] = target_share(ext.predict(source), target_class)
            identity[f"cycle_l1_{direction}"], identity[f"silhouette_iou_{direction}"] = 0.0, 1.0
        for scores in (floor, identity):  # the two directions' FIDs together: the run's main metric
            scores["fid"] = (scores["fid_AtoB"] + scores["fid_BtoA"]) / 2
        self._ready = {"joint": joint, "extractor": ext, "real": real, "floor": floor, "identity": identity}
        return self._ready

    def __call__(self, generator: nn.Module, z_dim: int, origin: dict[str, Any] | None = None) -> dict[str, Any]:
        start = time.perf_counter()
        ready = self.prepare()
        joint, ext = ready["joint"], ready["extractor"]
        z = torch.randn(len(joint), z_dim, generator=torch.Generator().manual_seed(self.seed))
        device = next(generator.parameters()).device
        outputs = generate(generator, z.to(device), joint.to(device), self.batch_size).cpu()
        cycled = generate(generator, z.to(device), outputs.to(device), self.batch_size).cpu()
        slots = [domain_slots(t) for t in (joint, outputs, cycled)]
        metrics = {}
        for direction, (src, tgt) in DIRECTION_SLOTS.items():
            source, output, back = slots[0][src], to_uint8_images(slots[1][tgt]), slots[2][src]
            metrics[f"fid_{direction}"] = fid(ext(output, self.batch_size), ready["real"][direction])
            if self.classifies:
                metrics[f"target_share_{direction}"] = target_share(ext.predict(output), self.classes["AB"[tgt]])
            metrics[f"cycle_l1_{direction}"] = paired_scores(back, source)["l1"]
            metrics[f"silhouette_iou_{direction}"] = silhouette_iou(source, slots[1][tgt])
        metrics["fid"] = (metrics["fid_AtoB"] + metrics["fid_BtoA"]) / 2
        return {"dataset": self.cfg.data.name, **(origin or {}), "seed": self.seed, "kind": "image",
                "samples": {"translated": len(joint), "real": len(joint)}, "extractor": ext.record(),
                "metrics": metrics, "floor": ready["floor"],
                "floor_note": "the target domain's training images against its test images",
                "baselines": {"identity": ready["identity"]},
                "baselines_note": "identity: output = input (each test image left in its own domain)",
                "seconds": round(time.perf_counter() - start, 2)}
