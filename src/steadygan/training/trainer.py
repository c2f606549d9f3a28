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
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..apps.pictures import (
    cycle_picture,
    fixed_sample_inputs,
    fixed_translation_inputs,
    sample_grid_path,
    save_samples,
    translation_picture,
)
from ..config import Config, dump_config
from ..core.batch import Batch
from ..core.optim import apply_defaults
from ..core.pair import GanPair, generate
from ..data import InMemoryData
from ..errors import CollectiveError, TrainingDiverged
from ..files import atomic_write_text
from .build import RunParts, build_run, config_from_dict, new_run_dir, rebuild_game
from .checkpoint import checkpoint_path, discard_checkpoints_after, latest_checkpoint, save_agreed
from .distributed import ProcessContext
from .guards import StopFlag, agree_on_stop, raise_earliest_divergence, refuse_non_finite, run_lock, stop_signals
from .health import FAILING, HEALTHY, STATUS_CODES
from .iteration import Iteration
from .recovery import (
    Recovery,
    announce,
    apply_remedy,
    record_remedy,
    truncate_history,
    without_changed_penalty_states,
)
from .resume import init_from
from .state import RunState, SnapshotEntry, checkpoint_parts
from .tracking import Diverged, Tracker, read_stats, truncate_stats

ADVICE = "Lower the learning rate or add a stabiliser (see `steadygan methods`)."


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stopped: str                  # "steps", "time", "interrupted", "failing" (train.on_failure=stop) or what
                                  # the evaluation observer returned (e.g. "pruned": a tune trial)
    checkpoint: Path | None
    samples: Path | None
    signal: int | None = None     # interrupted: the signal that stopped it (SIGINT, SIGTERM)
    health: str = "healthy"       # the health status it ended with, in words
    remedies: int = 0             # rollbacks with a remedy it went through (train.on_failure=heal, on_nan)


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
        self.ctx, self.run_dir = parts.ctx, None if run_dir is None else Path(run_dir)
        self.device, self.data, self.sampler, self.pair = parts.device, parts.data, parts.sampler, parts.pair
        self.G, self.D, self.ema = parts.pair.generator, parts.pair.discriminator, parts.ema
        self.periodic_eval, self._autocast, self.health = parts.periodic_eval, parts.autocast, parts.health
        self.recovery = Recovery(cfg.train, parts.ladder)
        self.channels_last = parts.channels_last
        self.fixed_targets = None  # a translation run's picture: the targets beside its inputs and outputs
        if self.pair.translates:
            self.fixed_z, self.fixed_y, self.fixed_targets = fixed_translation_inputs(
                self.data, cfg.train.samples, cfg.model.z_dim, cfg.train.seed + 1, self.device)
            self.grid_columns = None
        else:
            self.fixed_z, self.fixed_y, self.grid_columns = fixed_sample_inputs(
                self.data.info, cfg.train.samples, self.pair.num_classes, cfg.model.z_dim, cfg.train.seed + 1,
                self.device)
        self.step = 0          # generator updates done
        self.d_updates = 0     # discriminator updates done (lazy D penalties count these)
        self.elapsed = 0.0     # training seconds, summed over resumes
        self.observer: Callable[[int, dict[str, float]], str | None] | None = None  # see train()
        self._stop_reason: str | None = None
        self.rollbacks = 0     # remedies applied (recovery.py): the next one is the ladder's rung of this index
        self.lr_scale = 1.0    # learning-rate factor after those rollbacks
        self._adopt(parts)

    def _adopt(self, parts: RunParts) -> None:
        """Train with these parts (built from the config, or rebuilt by a remedy)."""
        self.parts, self.cfg = parts, parts.cfg
        self.loss, self.augment, self.d, self.g = parts.loss, parts.augment, parts.d, parts.g
        self.iteration = Iteration(parts)
        self.state = RunState(checkpoint_parts(self, parts))

    # --- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "data": self.data.info.to_dict(), **self.state.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state.load_state_dict(state)
        own = {k: state[k] for k in self.state.parts if k in state and k != SnapshotEntry.KEY}
        self.recovery.load_checkpoint_entry(state.get(SnapshotEntry.KEY), own)
        self._apply_hyperparameters()

    def _apply_hyperparameters(self) -> None:
        """The config's optimiser settings (times the rollback factor for the learning rate)
        over those a loaded optimiser state carries: a resume with an allowed config change
        trains with the new values; without one they are the same numbers."""
        for player in (self.d, self.g):
            apply_defaults(player.optimizer, self.lr_scale)

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
        refuse_non_finite(self.ctx, self.step, {"G": self.G, "D": self.D, "EMA": self.ema.model if self.ema else None},
                          {"G": self.g.optimizer, "D": self.d.optimizer})
        target = path if path is not None else checkpoint_path(self.run_dir, self.step)
        return save_agreed(self.ctx, self.state_dict, target,
                           None if path is not None else self.cfg.train.keep_checkpoints)

    def _flush(self, tracker: Tracker) -> None:
        """Write pending stats; raise Diverged (on every rank) on a non-finite value."""
        try:
            rows = tracker.flush()
        except Diverged as exc:
            raise_earliest_divergence(self.ctx, exc)
            raise
        raise_earliest_divergence(self.ctx, None)
        self._watch(rows, tracker)

    def _watch(self, rows: list[dict[str, Any]], tracker: Tracker) -> None:
        """Hand new rows to the health monitor; say a change of status, and act on a failing
        one as train.on_failure asks (decided on rank 0's rows, alike on every rank)."""
        changed = self.health.observe(rows)
        if changed is not None and self.ctx.is_main:
            tracker.log_values(changed.step, {"Health/status": STATUS_CODES[changed.level]})
            tracker.health = "" if changed.level == HEALTHY else changed.level
            tracker.say(f"steadygan: step {changed.step}: {changed}")
        if self.cfg.train.on_failure in ("stop", "heal"):
            failing = self.health.status.level == FAILING if self.ctx.is_main else None
            if self.ctx.broadcast_object(failing):
                self._failing = self.health.status

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
            fake, columns = self.generate(self.fixed_z, self.fixed_y), self.grid_columns
            if self.pair.two_domains:  # a | A->B | A->B->A, b | B->A | B->A->B
                fake, columns = cycle_picture(self.fixed_y, fake, self.generate(self.fixed_z, fake))
            elif self.fixed_targets is not None:
                fake, columns = translation_picture(self.fixed_y, fake, self.fixed_targets)
            picture = save_samples(fake, path, self.data.info, columns,
                                   scale=2 if fake.shape[-1] <= 32 else 1,
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
        self._watch([{"step": self.step, **row}], tracker)
        if self.observer is not None and self._stop_reason is None:
            self._stop_reason = self.ctx.broadcast_object(self.observer(self.step, row) if self.ctx.is_main else None)
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
            # Steps after the checkpoint are redone; rollbacks after it are undone.
            truncate_stats(self.run_dir / "stats.jsonl", self.step, self.rollbacks)
        tracker = Tracker(self.run_dir, self.step, t.steps, t.progress, writes=self.ctx.is_main)
        self._last_ckpt = self.ctx.broadcast_object(latest_checkpoint(self.run_dir) if self.ctx.is_main else None)
        self._last_samples, self._stop_signal, self._failing, self._stop_reason = None, None, None, None
        if self.ctx.is_main:  # the health status of the rows so far: where an uninterrupted run would be
            self.health.replay(read_stats(self.run_dir / "stats.jsonl"))
            truncate_history(self.run_dir, self.rollbacks)
        if self.recovery.heals and self.ctx.is_main and not self.recovery.restored:
            for note in self.parts.ladder_notes:
                tracker.say(f"steadygan: heal: {note}")
        if self.recovery.heals and self.recovery.snapshot is None:
            self._snapshot()  # the state it starts from is the first one to go back to
        try:
            self.periodic_eval.prepare(self.ctx)  # extractor and real features, off the training clock
            # The handler stays in place through the final evaluation and save: a SIGTERM
            # there still ends with the checkpoint.
            with stop_signals() as interrupted:
                while True:
                    try:
                        stopped = self._loop(tracker, interrupted)
                        if stopped == "failing" and self.recovery.heals and \
                                self._recover(tracker, self._failing.step, str(self._failing), "failed_at"):
                            self._failing = None
                            continue
                        self._finish(tracker, stopped)
                        break
                    except Diverged as exc:
                        if not (self.recovery.on_divergence and
                                self._recover(tracker, exc.step, str(exc), "diverged_at")):
                            raise
        except Diverged as exc:
            tracker.close()
            where = f"the last good checkpoint is {self._last_ckpt}" if self._last_ckpt else "no checkpoint was written"
            raise TrainingDiverged(f"{exc}; stopping ({where}). {ADVICE}") from exc
        tracker.close()
        return TrainResult(self.run_dir, self.step, stopped, self._last_ckpt, self._last_samples,
                           self._stop_signal if stopped == "interrupted" else None, str(self.health.status),
                           self.rollbacks)

    def _finish(self, tracker: Tracker, stopped: str) -> None:
        """Final evaluation (unless interrupted), final checkpoint and sample grid."""
        self._flush(tracker)
        evaluation = self.periodic_eval
        final_eval = stopped != "interrupted" and evaluation.enabled and evaluation.last_step != self.step
        if final_eval:
            self.evaluate(tracker)  # every evaluated run ends with its final score
        if final_eval or self._last_ckpt != checkpoint_path(self.run_dir, self.step):
            self._last_ckpt = self.save()  # after the final evaluation: its state (best, last step) is kept
        if self._last_samples is None or self.step % self.cfg.train.sample_every != 0:
            self._last_samples = self.write_samples(tracker)

    # --- going back (recovery.py) -------------------------------------------------------------

    def _snapshot(self) -> None:
        """Keep this state to go back to. A non-finite weight is a divergence (Diverged), as at a save."""
        if self.ema is not None:
            self.ema.refresh_batch_stats()  # as save() does: a snapshot equals the checkpoint of its step
        refuse_non_finite(self.ctx, self.step, {"G": self.G, "D": self.D, "EMA": self.ema.model if self.ema else None},
                          {"G": self.g.optimizer, "D": self.d.optimizer})
        self.recovery.take(self.step, self.state.state_dict(skip=(SnapshotEntry.KEY,)))

    def _clean(self) -> bool:
        """Rank 0's judgement, for every rank: is this a state to go back to (health.clean)?"""
        return self.ctx.broadcast_object(self.health.judge.clean(self.step) if self.ctx.is_main else None)

    def _recover(self, tracker: Tracker, failed_at: int, why: str, trigger: str) -> bool:
        """Back to a good state with the ladder's next remedy; False when there is none left
        (or no state to go back to). Every rank takes the same decision: the trigger is agreed."""
        ladder = self.recovery.ladder
        back = self.recovery.state_to_load(self.ctx, self._last_ckpt) if self.rollbacks < len(ladder) else None
        if back is None:
            return False
        source, state = back
        remedy, count = ladder[self.rollbacks], self.rollbacks + 1
        if self.ctx.is_main:  # first: a kill from here on resumes from before the failure, not past it
            discard_checkpoints_after(self.run_dir, state["step"])
        best = self.periodic_eval.best  # the best model the run made stays the one to beat (best.pt is kept)
        lr_scale = self.lr_scale * remedy.lr_factor
        if remedy.overrides:
            before, augment = (self.d, self.g), self.cfg.train.augment
            self._adopt(rebuild_game(self.parts, config_from_dict(apply_remedy(self.cfg.to_dict(), remedy))))
            state = without_changed_penalty_states(state, before, (self.d, self.g))
            if self.cfg.train.augment != augment:  # another augmentation starts from its own state
                state = {**state, "augment": None}
        self.load_state_dict(state)
        self.periodic_eval.best = best
        self.rollbacks, self.lr_scale = count, lr_scale  # the loaded state's counters are the older ones
        self._apply_hyperparameters()
        tracker.rewind(self.step)
        row = {"Rollback/count": count, "Rollback/lr_scale": lr_scale, f"Rollback/{trigger}": failed_at}
        tracker.log_values(self.step, row)
        if self.health.observe([{"step": self.step, **row}]) is not None:  # judged afresh from this state
            tracker.log_values(self.step, {"Health/status": STATUS_CODES[HEALTHY]})
        tracker.health, self._failing = "", None
        announce(self.ctx, why, f"{source} (step {self.step})", remedy, count, len(ladder))
        if self.ctx.is_main:
            atomic_write_text(self.run_dir / "config.yaml", dump_config(self.cfg))
            record_remedy(self.run_dir, count, self.step, failed_at, why, remedy)
        if self.recovery.heals:
            self._snapshot()  # the remedied state: the one to go back to now, as a resume would have it
        self._last_ckpt = self.save()  # a kill from here on resumes with the remedy applied
        return True

    def _loop(self, tracker: Tracker, interrupted: StopFlag) -> str:
        """Train until the step or time budget is spent; returns why it stopped."""
        t = self.cfg.train
        started = time.perf_counter() - self.elapsed
        stop, self.elapsed = agree_on_stop(self.ctx, interrupted, self.elapsed)
        while self.step < t.steps:
            if t.time is not None and self.elapsed >= t.time:
                return "time"
            if stop:
                self._stop_signal = stop
                return "interrupted"
            if self._failing is not None:
                return "failing"
            if self._stop_reason is not None:
                return self._stop_reason
            stats = self._one_step()
            stop, self.elapsed = agree_on_stop(self.ctx, interrupted, time.perf_counter() - started)
            tracker.record(self.step, self.elapsed, stats)
            if self.step % t.log_every == 0:
                self._flush(tracker)
            if self.health.due(self.step):
                probe = self.health.measure(self.G, self.D, self.step)
                tracker.log_values(self.step, probe)
                self._watch([{"step": self.step, **probe}], tracker)
            if self.step % t.sample_every == 0:
                self._last_samples = self.write_samples(tracker)
            if self.periodic_eval.due(self.step, self.elapsed):
                self.evaluate(tracker)
                started = time.perf_counter() - self.elapsed  # evaluation time is not training time
            if self.recovery.snapshot_due(self.step) and self._failing is None and self._clean():
                self._snapshot()  # before the checkpoint: then the checkpoint is the snapshot
            if self.step % t.checkpoint_every == 0:
                self._flush(tracker)  # raises on a non-finite value: never checkpoint a diverged model
                self._last_ckpt = self.save()
        return "steps"

    # --- one iteration ----------------------------------------------------------------------

    def _real_batch(self) -> Batch:
        return self.iteration.real_batch()

    def _one_step(self) -> dict[str, torch.Tensor]:
        stats, self.d_updates = self.iteration(self.step, self.d_updates)
        if self.ema is not None:
            self.ema.update(self.G, self.step)
        self.step += 1
        return stats


def train(cfg: Config, run_dir: Path | None = None, resume: dict[str, Any] | None = None,
          data: InMemoryData | None = None,
          observer: Callable[[int, dict[str, float]], str | None] | None = None) -> TrainResult:
    """Train a new run (numbered directory under train.out_dir) or resume one from its state.

    ``observer(step, row)`` is told each periodic evaluation's row (rank 0's); a string it
    returns ends the run there with that reason (``steadygan tune`` prunes trials so)."""
    trainer = Trainer(cfg, run_dir, data)
    trainer.observer = observer
    ctx = trainer.ctx
    if resume is not None:
        trainer.load_state_dict(resume)
    elif cfg.train.init_from and ctx.is_main:  # read by rank 0, broadcast below
        trainer.init_from(cfg.train.init_from)
    ctx.broadcast_modules([trainer.G, trainer.D, trainer.ema.model if trainer.ema else None])  # rank 0's weights
    trainer.periodic_eval.prepare(ctx)  # its data, extractor and weights files are checked here too
    created = trainer.run_dir is None
    if created:  # made only now that everything above worked: no empty run dirs
        trainer.run_dir = Path(ctx.broadcast_object(new_run_dir(cfg.train.out_dir, cfg.train.name)
                                                    if ctx.is_main else None))
    try:
        return trainer.train()
    except TrainingDiverged as exc:
        if not (created and trainer._last_ckpt is None):
            raise
        # Diverged before its first checkpoint: a new run directory holds nothing to continue from.
        if ctx.is_main:
            shutil.rmtree(trainer.run_dir, ignore_errors=True)
        raise TrainingDiverged(f"{exc.__cause__}; stopping (no checkpoint was written, so the new run directory "
                               f"{trainer.run_dir} was removed). {ADVICE}") from exc.__cause__
