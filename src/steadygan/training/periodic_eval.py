"""Evaluation during training: when to score the generator, what to log, which checkpoint is best.

The trainer asks :meth:`PeriodicEval.due` after every step (``train.eval_every`` steps or
``train.eval_seconds`` of training time) and calls :meth:`PeriodicEval.run` at the end of
training as well, so every run that evaluates at all ends with a final score. Results go to
stats.jsonl as ``Metric/<name>`` rows (the names ``steadygan report`` reads) with the step
and the training seconds; with ``eval_on=both`` the raw generator's numbers are logged as
``MetricRaw/<name>`` beside the EMA's ``Metric/<name>``.

The evaluator is built once per run, so the classifier and the real-data features are
computed once; it draws its own seeded noise and never touches the training RNG, so a run
with evaluation trains exactly the same parameters as one without.

The best checkpoint by the main metric (FID if measured, else KID, ...; modes recovered for
2-D data, ties broken by the high-quality share) is written to ``checkpoints/best.pt``,
outside the rotation of ``ckpt-*.pt``, with ``best.json`` beside it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..config import EvalOptions
from ..core.sampler import NetworkSampler, TranslationSampler
from ..files import atomic_write_text
from ..metrics import Evaluator, json_safe
from ..metrics.translation import as_output, paired_scores
from .distributed import SINGLE_PROCESS, ProcessContext

# Names that evaluate.py returns -> the stats.jsonl key suffix the report knows.
METRIC_KEYS = {"fid": "fid", "kid": "kid", "kid_std": "kid_std", "precision": "precision", "recall": "recall",
               "density": "density", "coverage": "coverage",
               "modes_recovered": "modes", "modes": "modes", "high_quality_fraction": "hq", "kl_to_uniform": "kl",
               "class_agreement": "class_agreement", "intra_fid": "intra_fid",
               "class_recall": "class_recall", "class_recall_min": "class_recall_min",
               "class_coverage": "class_coverage", "class_diversity": "class_diversity",
               "class_diversity_min": "class_diversity_min", "classes_covered": "classes", "class_kl": "class_kl",
               "l1": "l1", "psnr": "psnr", "ssim": "ssim", "l1_identity": "l1_identity",
               **{f"{name}_{d}": f"{name}_{d}" for d in ("AtoB", "BtoA")  # a CycleGAN run's (cycle_evaluation.py)
                  for name in ("fid", "target_share", "cycle_l1", "silhouette_iou", "identity_target_share")}}
# Main metric candidates in order of preference, with their direction (True = higher is better).
MAIN_METRICS = (("fid", False), ("kid", False), ("precision", True), ("density", True))
BEST_CHECKPOINT = "best.pt"


def metric_row(result: dict[str, Any], prefix: str = "Metric/") -> dict[str, float]:
    """An evaluation result -> ``{"Metric/fid": ..., ...}`` (missing -> NaN; stats.jsonl stores null)."""
    return {f"{prefix}{METRIC_KEYS[k]}": (float(v) if v is not None else math.nan)
            for k, v in result["metrics"].items() if k in METRIC_KEYS}


def main_score(row: dict[str, float], toy: bool) -> tuple[float, ...] | None:
    """A tuple where larger is better, or None when the main metric is missing or not finite."""
    if toy:
        modes, hq = row.get("Metric/modes"), row.get("Metric/hq")
        if modes is None or not math.isfinite(modes):
            return None
        return (modes, hq if hq is not None and math.isfinite(hq) else -math.inf)
    for name, higher in MAIN_METRICS:
        value = row.get(f"Metric/{name}")
        if value is not None:
            return (value if higher else -value,) if math.isfinite(value) else None
    return None


class PeriodicEval:
    """Schedule, scoring and best-checkpoint bookkeeping of one run's evaluations."""

    def __init__(self, options: EvalOptions, evaluator: Evaluator, has_ema: bool, z_dim: int,
                 num_classes: int = 0, pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
                 cycle: Callable[..., dict[str, Any]] | None = None) -> None:
        """``options``: the ``train.eval_*`` keys; ``evaluator``: built for the run's data (the
        builder's ``build_evaluator``); ``z_dim``, ``num_classes``: how to draw from the generators;
        ``pairs``: a translation run's test (inputs, targets): its samples are the inputs'
        translations, also scored against the targets (L1, PSNR, SSIM); ``cycle``: a CycleGAN
        run's scores (training/cycle_evaluation.py), which replace the evaluator's."""
        self.options, self.evaluator, self.cycle = options, evaluator, cycle
        self.z_dim, self.num_classes, self.pairs = z_dim, num_classes, pairs
        self._identity: float | None = None  # the identity map's L1 on the pairs, computed once
        on = options.eval_on if options.eval_on != "auto" else ("ema" if has_ema else "raw")
        self.targets = [("ema", "Metric/"), ("raw", "MetricRaw/")] if on == "both" else [(on, "Metric/")]
        self.last_step: int | None = None
        self.last_elapsed = 0.0
        self.best: dict[str, Any] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.options.eval_every or self.options.eval_seconds)

    def prepare(self, ctx: ProcessContext = SINGLE_PROCESS) -> None:
        """Build the extractor and the real features now, outside the training clock.

        Distributed: rank 0 builds them first (training and caching the classifier if it has
        to); the other ranks then load the extractor, to embed their share of the samples."""
        if not self.enabled:
            return
        if ctx.is_main:
            self.cycle.prepare() if self.cycle is not None else self.evaluator.reference()
        ctx.barrier()
        if self.cycle is not None:
            return  # scored on the main process alone
        if not ctx.is_main and self.evaluator.protocol != "mixture":
            _ = self.evaluator.extractor  # built (loaded from the cache rank 0 filled) on first access

    def due(self, step: int, elapsed: float) -> bool:
        if not self.enabled or step == self.last_step:
            return False
        every, seconds = self.options.eval_every, self.options.eval_seconds
        if every and step % every == 0:
            return True
        return seconds is not None and elapsed - self.last_elapsed >= seconds

    def run(self, step: int, elapsed: float, generators: dict[str, nn.Module],
            save_best: Callable[[Path], None], run_dir: Path, ctx: ProcessContext = SINGLE_PROCESS) -> dict[str, Any]:
        """Score each target generator; returns the stats row (step, elapsed_s, Metric/*, eval_s).

        Distributed: every rank generates and embeds its share of the samples, rank 0 scores
        them and shares the row, so every rank keeps the same best-checkpoint record."""
        row: dict[str, Any] = {"elapsed_s": round(elapsed, 4)}
        seconds = 0.0
        for which, prefix in self.targets:
            G = generators[which]
            # BatchNorm running statistics are per rank: every share is generated with rank 0's,
            # the ones its checkpoint holds.
            ctx.broadcast_modules([G], buffers_only=True)
            was_training = G.training
            G.eval()  # BatchNorm from running statistics: the score does not depend on the batch
            try:
                origin = {"step": step, "checkpoint": str(run_dir / f"(training, step {step})"), "ema": which == "ema"}
                if self.cycle is not None:
                    result = self._cycle_result(G, origin) if ctx.is_main else None
                else:
                    result = self._result(G, origin, ctx)
            finally:
                G.train(was_training)
            if ctx.is_main:
                row.update(metric_row(result, prefix))
                seconds += result["seconds"]
        row["eval_s"] = round(seconds, 2)
        row = ctx.broadcast_object(row)
        self.last_step, self.last_elapsed = step, elapsed
        score = main_score(row, self.evaluator.protocol == "mixture")
        if score is not None and (self.best is None or score > tuple(self.best["score"])):
            self.best = {"step": step, "score": list(score),
                         **{k: v for k, v in row.items() if k.startswith("Metric/")}}
            path = run_dir / "checkpoints" / BEST_CHECKPOINT
            save_best(path)
            if ctx.is_main:
                atomic_write_text(path.parent / "best.json", json.dumps(json_safe(self.best), indent=2) + "\n")
        return row

    def _result(self, G: nn.Module, origin: dict[str, Any], ctx: ProcessContext) -> dict[str, Any] | None:
        if self.pairs is None:
            model = NetworkSampler(G, self.z_dim, self.num_classes)
        else:
            model = TranslationSampler(G, self.z_dim, self.pairs[0].to(next(G.parameters()).device))
        result = self.evaluator.evaluate(model, origin, (ctx.rank, ctx.world_size), ctx.gather_to_main)
        if self.pairs is not None and ctx.is_main:
            outputs = model.sample(len(self.pairs[0]), self.evaluator.seed).cpu()
            result["metrics"].update(paired_scores(outputs, self.pairs[1]))
            # The identity map's L1, beside it: the lab report's failure rule for translation.
            result["metrics"]["l1_identity"] = self._identity_l1()
        return result

    def _cycle_result(self, G: nn.Module, origin: dict[str, Any]) -> dict[str, Any]:
        result = self.cycle(G, self.z_dim, origin)
        # The identity map's target shares, beside the run's: the lab report's failure rule for CycleGAN.
        result["metrics"].update({f"identity_{k}": v for k, v in result["baselines"]["identity"].items()
                                  if k.startswith("target_share_")})
        return result

    def _identity_l1(self) -> float:
        if self._identity is None:
            inputs, targets = self.pairs
            self._identity = paired_scores(as_output(inputs, targets), targets)["l1"]
        return self._identity

    def state_dict(self) -> dict[str, Any]:
        return {"last_step": self.last_step, "last_elapsed": self.last_elapsed, "best": self.best}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state:
            self.last_step, self.last_elapsed, self.best = state["last_step"], state["last_elapsed"], state["best"]

