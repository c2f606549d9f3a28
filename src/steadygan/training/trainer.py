"""The training loop and its bookkeeping: n_critic, EMA, sample grids, checkpoints, resume.

The algorithm lives in ``steadygan.core.step`` and every part of a run is made by
``steadygan.training.build``; this module decides *when* things happen and keeps a run
directory:

    runs/00007-name/
      config.yaml          the resolved config
      stats.jsonl          one row per step (losses, penalties, grad norms, clip fractions)
      tensorboard/         the same scalars, plus sample grids
      samples/             step-<step, 8 digits>.png: fixed-noise grids every train.sample_every steps
      checkpoints/         ckpt-<step, 8 digits>.pt, the newest train.keep_checkpoints kept;
                           best.pt + best.json when evaluation during training is on
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..apps.pictures import TOY_GRID_POINTS, class_rows, sample_grid_path, save_samples
from ..config import Config, dump_config
from ..core.batch import Batch
from ..core.collectives import shard_of
from ..core.pair import GanPair, generate
from ..core.penalties import G_LOSS
from ..core.step import d_step, g_step
from ..data import InMemoryData
from ..errors import CollectiveError, TrainingDiverged
from ..files import atomic_write_text
from .build import build_run, new_run_dir
from .checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
from .distributed import ProcessContext
from .fast_paths import CUDA_GRAPH_MODES
from .guards import agree_on_stop, first_non_finite, raise_earliest_divergence, run_lock, stop_signals
from .resume import init_from
from .state import (Counter, EmaState, NetworkState, OptionalState, PenaltyStates, RngState, RunState,
                    Stateful)
from .tracking import Diverged, Tracker, truncate_stats


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stopped: str                  # "steps", "time" or "interrupted"
    checkpoint: Path | None
    samples: Path | None


class Trainer:
    """Trains the parts the builder made from a config into ``run_dir``."""

    def __init__(self, cfg: Config, run_dir: Path | None, data: InMemoryData | None = None,
                 pair: GanPair | None = None, context: ProcessContext | None = None) -> None:
        """``data`` and ``pair`` replace what the config's data.* and model.* would build
        (benchmarks use them to train other networks; a checkpoint then restores only into
        networks of the same shapes). ``context``: this process's place in a distributed
        job (default: the torch.distributed job already joined, else a single process).
        ``run_dir`` may be set later: `train` creates it only once everything was built."""
        parts = build_run(cfg, ProcessContext.current() if context is None else context, data, pair)
        self.cfg, self.ctx, self.run_dir = cfg, parts.ctx, None if run_dir is None else Path(run_dir)
        self.device, self.data, self.sampler, self.pair = parts.device, parts.data, parts.sampler, parts.pair
        self.G, self.D = parts.pair.generator, parts.pair.discriminator
        self.loss, self.augment, self.d, self.g, self.ema = parts.loss, parts.augment, parts.d, parts.g, parts.ema
        self.periodic_eval, self._autocast, self.channels_last = parts.periodic_eval, parts.autocast, parts.channels_last
        # Fixed noise for sample grids, from its own generator so that sampling never moves
        # the training RNG (resume stays exact whatever the sample schedule). A conditional
        # run's image grid has one row per class.
        t, k = cfg.train, self.pair.num_classes
        self.grid_columns, grid_labels = class_rows(t.samples, k) if self.data.is_image else (None, None)
        n_fixed = len(grid_labels) if grid_labels is not None else t.samples if self.data.is_image else TOY_GRID_POINTS
        self.fixed_z = torch.randn(n_fixed, cfg.model.z_dim, generator=torch.Generator().manual_seed(t.seed + 1))
        self.fixed_z = self.fixed_z.to(self.device)
        self.fixed_y = None if not k else (grid_labels if grid_labels is not None else torch.arange(n_fixed) % k)
        self.fixed_y = None if self.fixed_y is None else self.fixed_y.to(self.device)
        self.step = 0          # generator updates done
        self.d_updates = 0     # discriminator updates done (lazy D penalties count these)
        self.elapsed = 0.0     # training seconds, summed over resumes
        self.rollbacks = 0     # divergences recovered from (train.on_nan=rollback)
        self.lr_scale = 1.0    # learning-rate factor after those rollbacks
        self.state = RunState(self._stateful_parts())

    def _stateful_parts(self) -> dict[str, Stateful]:
        """Every part a checkpoint holds, under the key it is stored as."""
        parts: dict[str, Stateful] = {
            "step": Counter(self, "step"), "d_updates": Counter(self, "d_updates"), "elapsed": Counter(self, "elapsed"),
            "generator": NetworkState(self.G, "the checkpoint's generator"),
            "discriminator": NetworkState(self.D, "the checkpoint's discriminator"), "ema": EmaState(self.ema),
            "opt_g": self.g.optimizer, "opt_d": self.d.optimizer, "sampler": self.sampler, "rng": RngState(),
            "eval": self.periodic_eval, "rollbacks": Counter(self, "rollbacks", 0),
            "lr_scale": Counter(self, "lr_scale", 1.0), "augment": OptionalState(self.augment),
            "penalty_states": PenaltyStates((self.d, self.g)),
        }
        for player in (self.d, self.g):
            if player.scaler is not None:  # fp16: the scale it had reached
                parts[f"scaler_{player.tag.lower()}"] = player.scaler
        return parts

    # --- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "data": self.data.info.to_dict(), **self.state.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state.load_state_dict(state)
        self._apply_hyperparameters()

    def _apply_hyperparameters(self) -> None:
        """The config's optimiser settings (times the rollback factor for the learning rate)
        over those a loaded optimiser state carries: a resume with an allowed config change
        trains with the new values; without one they are the same numbers."""
        for player in (self.d, self.g):
            opt = player.optimizer
            for group in opt.param_groups:
                for key in ("betas", "momentum", "alpha", "nesterov"):
                    if key in opt.defaults:
                        group[key] = opt.defaults[key]
                group["lr"] = opt.defaults["lr"] * self.lr_scale

    def init_from(self, source: str | Path) -> Path:
        """Fine-tuning: start from another run's G, D and EMA weights (see ``resume.init_from``)."""
        return init_from(source, self.G, self.D, self.ema)

    def save(self, path: Path | None = None) -> Path:
        """The numbered checkpoint of this step (rotated), or ``path`` (never rotated).

        Refuses (Diverged) when any parameter, buffer or optimiser state is not finite: a
        checkpoint on disk is always one that training can continue from. Distributed: every
        rank checks its own state and they refuse together; rank 0 writes."""
        if self.ema is not None:
            self.ema.refresh_batch_stats()  # the saved EMA samples well in eval mode
        bad = first_non_finite({"G": self.G, "D": self.D, "EMA": self.ema.model if self.ema else None},
                               {"G": self.g.optimizer, "D": self.d.optimizer})
        raise_earliest_divergence(self.ctx, None if bad is None else Diverged(self.step, bad, math.nan))
        target = path if path is not None else checkpoint_path(self.run_dir, self.step)
        failure = None
        if self.ctx.is_main:
            try:
                save_checkpoint(self.state_dict(), target, None if path is not None else self.cfg.train.keep_checkpoints)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the others know
                failure = exc
        # The other ranks learn whether rank 0's write worked: they never name a checkpoint
        # that is not on disk, nor train on after it failed.
        (failed,) = self.ctx.agree_max([float(failure is not None)])
        if failure is not None:
            raise failure
        if failed:
            raise CollectiveError(f"rank {self.ctx.rank}: rank 0 could not write {target} (its message says why)")
        return target

    def _flush(self, tracker: Tracker) -> None:
        """Write pending stats; raise Diverged (on every rank) on a non-finite value."""
        try:
            tracker.flush()
        except Diverged as exc:
            raise_earliest_divergence(self.ctx, exc)
            raise
        raise_earliest_divergence(self.ctx, None)

    # --- samples and scores -----------------------------------------------------------------

    @property
    def sampling_generator(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.G

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return generate(self.sampling_generator, z, y)

    def write_samples(self, tracker: Tracker | None = None) -> Path:
        """The fixed-noise grid of this step (rank 0 only: it uses no training randomness)."""
        path = sample_grid_path(self.run_dir, self.step)
        if self.ema is not None:
            self.ema.refresh_batch_stats()  # every rank: the EMA's state stays the same everywhere
        if self.ctx.is_main:
            fake = self.generate(self.fixed_z, self.fixed_y)
            picture = save_samples(fake, path, self.data.info, self.grid_columns, scale=2 if fake.shape[-1] <= 32 else 1,
                                   title=f"{self.run_dir.name} step {self.step}")
            if tracker is not None:
                tracker.image("Samples", picture, self.step)
        return path

    def evaluate(self, tracker: Tracker) -> dict[str, float]:
        """Score the generator(s) now; the row goes to stats.jsonl and TensorBoard."""
        self._flush(tracker)  # raises on a non-finite value: a diverged model is not scored
        if self.ema is not None:
            self.ema.refresh_batch_stats()
        generators = {"raw": self.G, "ema": self.ema.model if self.ema is not None else None}
        row = self.periodic_eval.run(self.step, self.elapsed, generators, self.save, self.run_dir, self.ctx)
        tracker.log_values(self.step, row)
        return row

    # --- loop -------------------------------------------------------------------------------

    def train(self) -> TrainResult:
        try:
            with run_lock(self.run_dir) if self.ctx.is_main else contextlib.nullcontext():
                return self._train_locked()
        except CollectiveError as exc:
            last = getattr(self, "_last_ckpt", None)
            raise CollectiveError(f"{exc}; the last checkpoint is {last}; continue with the same launch and "
                                  f"--resume {self.run_dir}" if last else f"{exc}; no checkpoint was written") from exc

    def _train_locked(self) -> TrainResult:
        t = self.cfg.train
        if self.ctx.is_main:
            atomic_write_text(self.run_dir / "config.yaml", dump_config(self.cfg))
            truncate_stats(self.run_dir / "stats.jsonl", self.step)  # steps after the checkpoint are redone
        tracker = Tracker(self.run_dir, self.step, t.steps, t.progress, writes=self.ctx.is_main)
        self._last_ckpt = self.ctx.broadcast_object(latest_checkpoint(self.run_dir) if self.ctx.is_main else None)
        self._last_samples = None
        try:
            self.periodic_eval.prepare(self.ctx)  # extractor and real features, off the training clock
            # The handler stays in place through the final evaluation and save: a SIGTERM
            # there still ends with the checkpoint.
            with stop_signals() as interrupted:
                while True:
                    try:
                        stopped = self._loop(tracker, interrupted)
                        self._finish(tracker, stopped)
                        break
                    except Diverged as exc:
                        if not self._rollback(exc, tracker):
                            raise
        except Diverged as exc:
            tracker.close()
            where = f"the last good checkpoint is {self._last_ckpt}" if self._last_ckpt else "no checkpoint was written"
            raise TrainingDiverged(f"{exc}; stopping ({where}). Lower the learning rate or add a "
                                   "stabiliser (see `steadygan methods`).") from exc
        tracker.close()
        return TrainResult(self.run_dir, self.step, stopped, self._last_ckpt, self._last_samples)

    def _finish(self, tracker: Tracker, stopped: str) -> None:
        """Final evaluation (unless interrupted), final checkpoint and sample grid."""
        self._flush(tracker)
        final_eval = stopped != "interrupted" and self.periodic_eval.enabled and self.periodic_eval.last_step != self.step
        if final_eval:
            self.evaluate(tracker)  # every evaluated run ends with its final score
        if final_eval or self._last_ckpt != checkpoint_path(self.run_dir, self.step):
            self._last_ckpt = self.save()  # after the final evaluation: its state (best, last step) is kept
        if self._last_samples is None or self.step % self.cfg.train.sample_every != 0:
            self._last_samples = self.write_samples(tracker)

    def _rollback(self, exc: Diverged, tracker: Tracker) -> bool:
        """train.on_nan=rollback: back to the last good checkpoint with lower learning rates."""
        t = self.cfg.train
        if t.on_nan != "rollback" or self.rollbacks >= t.max_rollbacks or self._last_ckpt is None:
            return False
        # Rank 0 reads the file; every rank continues from the same state.
        state = self.ctx.broadcast_object(load_checkpoint(self._last_ckpt) if self.ctx.is_main else None)
        rollbacks, scale = self.rollbacks + 1, self.lr_scale * t.rollback_lr_factor
        self.load_state_dict(state)
        self.rollbacks, self.lr_scale = rollbacks, scale
        self._apply_hyperparameters()
        tracker.rewind(self.step)
        tracker.log_values(self.step, {"Rollback/count": rollbacks, "Rollback/lr_scale": scale,
                                       "Rollback/diverged_at": exc.step})
        if self.ctx.is_main:
            print(f"steadygan: {exc}; rolled back to {self._last_ckpt.name} (step {self.step}) with learning rates "
                  f"x{scale:g} (rollback {rollbacks} of at most {t.max_rollbacks})", file=sys.stderr)
        return True

    def _loop(self, tracker: Tracker, interrupted: threading.Event) -> str:
        """Train until the step or time budget is spent; returns why it stopped."""
        t = self.cfg.train
        started = time.perf_counter() - self.elapsed
        stop, self.elapsed = agree_on_stop(self.ctx, interrupted, self.elapsed)
        while self.step < t.steps:
            if t.time is not None and self.elapsed >= t.time:
                return "time"
            if stop:
                return "interrupted"
            stats = self._one_step()
            stop, self.elapsed = agree_on_stop(self.ctx, interrupted, time.perf_counter() - started)
            tracker.record(self.step, self.elapsed, stats)
            if self.step % t.log_every == 0:
                self._flush(tracker)
            if self.step % t.sample_every == 0:
                self._last_samples = self.write_samples(tracker)
            if self.periodic_eval.due(self.step, self.elapsed):
                self.evaluate(tracker)
                started = time.perf_counter() - self.elapsed  # evaluation time is not training time
            if self.step % t.checkpoint_every == 0:
                self._flush(tracker)  # raises on a non-finite value: never checkpoint a diverged model
                self._last_ckpt = self.save()
        return "steps"

    # --- one iteration ----------------------------------------------------------------------

    def _real_batch(self) -> Batch:
        """This rank's slice of the global batch (the whole batch in one process)."""
        index, b = self.sampler.next_index(), self.cfg.data.batch_size
        return self.data.batch(index[self.ctx.rank * b:(self.ctx.rank + 1) * b], labels=self.pair.conditional)

    def _noise(self) -> torch.Tensor:
        z_dim = self.cfg.model.z_dim
        return shard_of(lambda n: torch.randn(n, z_dim, device=self.device), self.cfg.data.batch_size)

    def _shares_fake(self) -> bool:
        """One G forward serves this iteration's D and G updates (config validation allows
        share_fake only with n_critic=1), unless a D penalty due now differentiates G's loss
        (consensus)."""
        return self.cfg.train.share_fake and not any(G_LOSS in p.needs and p.due(self.d_updates)
                                                     for p in self.d.penalties)

    def _after_d_update(self, stats: dict[str, torch.Tensor]) -> None:
        self.d_updates += 1
        if self.augment is not None:
            self.augment.observe(stats["Logits/real_sign"], self.cfg.data.batch_size * self.ctx.world_size)
            stats["Augment/p"] = torch.tensor(self.augment.p)

    def _one_step(self) -> dict[str, torch.Tensor]:
        stats: dict[str, torch.Tensor] = {}
        if self.cfg.train.compile in CUDA_GRAPH_MODES:
            # CUDA graphs reuse their output memory from one replay to the next: say where an
            # iteration begins, so that none of its outputs is taken for the previous one's.
            torch.compiler.cudagraph_mark_step_begin()
        if self._shares_fake():
            batch, z = self._real_batch(), self._noise()
            with self._autocast():
                fake = self.g(z, batch.y)  # with its graph: the G update back-propagates through it
            stats.update(d_step(self.d, self.g, self.loss, batch, z, self.d_updates, self._autocast, fake=fake))
            self._after_d_update(stats)
            stats.update(g_step(self.g, self.d, self.loss, batch, z, self.step, self._autocast, fake=fake))
        else:
            for _ in range(self.cfg.train.n_critic):
                batch = self._real_batch()
                stats.update(d_step(self.d, self.g, self.loss, batch, self._noise(), self.d_updates, self._autocast))
                self._after_d_update(stats)
            # The G step reuses the last batch: its labels (if any) are the classes G draws, and
            # its samples are read only by penalties that need D's loss.
            stats.update(g_step(self.g, self.d, self.loss, batch, self._noise(), self.step, self._autocast))
        if self.ema is not None:
            self.ema.update(self.G, self.step)
        self.step += 1
        return stats


def train(cfg: Config, run_dir: Path | None = None, resume: dict[str, Any] | None = None,
          data: InMemoryData | None = None) -> TrainResult:
    """Train a new run (numbered directory under train.out_dir) or resume one from its state."""
    trainer = Trainer(cfg, run_dir, data)
    ctx = trainer.ctx
    if resume is not None:
        trainer.load_state_dict(resume)
    elif cfg.train.init_from and ctx.is_main:  # read by rank 0, broadcast below
        trainer.init_from(cfg.train.init_from)
    ctx.broadcast_modules([trainer.G, trainer.D, trainer.ema.model if trainer.ema else None])  # rank 0's weights
    trainer.periodic_eval.prepare(ctx)  # its data, extractor and weights files are checked here too
    if trainer.run_dir is None:  # created only now that everything above worked: no empty run dirs
        trainer.run_dir = Path(ctx.broadcast_object(new_run_dir(cfg.train.out_dir, cfg.train.name)
                                                    if ctx.is_main else None))
    return trainer.train()
