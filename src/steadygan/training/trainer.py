"""The training loop and its bookkeeping: n_critic, EMA, sample grids, checkpoints, resume.

The algorithm itself lives in ``steadygan.core.step``; this module decides *when* things
happen and keeps a run directory:

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
import random
import re
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.augment import AugmentedDiscriminator, build_augment
from ..core.batch import Batch
from .build import build_data, build_pair
from ..files import atomic_write_text
from .checkpoint import (capture_rng, checkpoint_path, latest_checkpoint, load_checkpoint, load_matching,
    restore_rng, save_checkpoint)
from ..core.clipping import build_clipper
from ..config import Config, dump_config
from ..data import BatchSampler, DataError, InMemoryData, mixture
from ..errors import CollectiveError
from .distributed import ProcessContext
from ..core.collectives import shard_of
from ..core.ema import Ema
from .fast_paths import CUDA_GRAPH_MODES, can_fuse_real_and_fake, compile_players, to_channels_last
from .guards import first_non_finite, run_lock, stop_signals, truncate_stats
from ..apps.pictures import figure_to_array, make_grid, sample_grid_path, save_grid, save_scatter, scatter_figure
from ..core.losses import build_loss
from ..models import GanPair, is_convolutional, revert_sync_batchnorm
from ..core.pair import call, has_batch_coupling
from ..core.optim import build_optimizer
from ..core.penalties import G_LOSS, INPUT_GRADIENT_PENALTIES, build_penalty
from .periodic_eval import PeriodicEval
from ..errors import ConfigError, TrainingDiverged
from ..core.step import Player, d_step, g_step
from .tracking import Diverged, Tracker

TOY_GRID_POINTS = 2500  # the PacGAN/VEEGAN evaluation sample size


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stopped: str                  # "steps", "time" or "interrupted"
    checkpoint: Path | None
    samples: Path | None


def resolve_device(name: str, context: ProcessContext | None = None) -> torch.device:
    """``train.device`` for this process (in a distributed run on GPUs: its local rank's GPU)."""
    device = (context or ProcessContext()).device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but CUDA is not available here; use train.device=cpu or auto")
    return device


def new_run_dir(out_dir: str | Path, name: str = "") -> Path:
    """Next numbered run directory: 00000-name, 00001-name, ..."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in out.iterdir() if (m := re.match(r"^(\d{5})", p.name))]
    suffix = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    run = out / (f"{max(numbers, default=-1) + 1:05d}" + (f"-{suffix}" if suffix else ""))
    run.mkdir()
    return run


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Builds data, models and players from a config; trains into ``run_dir``."""

    def __init__(self, cfg: Config, run_dir: Path | None, data: InMemoryData | None = None,
                 pair: GanPair | None = None, context: ProcessContext | None = None) -> None:
        """``data`` and ``pair`` replace what the config's data.* and model.* would build
        (benchmarks use them to train other networks; a checkpoint then restores only into
        networks of the same shapes). ``context``: this process's place in a distributed
        job (default: the torch.distributed job already joined, else a single process)."""
        self.ctx = ProcessContext.current() if context is None else context
        # run_dir may be set after construction: `train` creates it only once data and
        # models were built, so a bad dataset leaves no empty run directory behind.
        self.cfg, self.run_dir = cfg, None if run_dir is None else Path(run_dir)
        t = cfg.train
        if t.world_size is None:
            t.world_size = self.ctx.world_size  # recorded in config.yaml: the global batch is batch_size x this
        elif t.world_size != self.ctx.world_size:
            raise ConfigError(f"train.world_size={t.world_size} but this run was launched with {self.ctx.world_size} "
                              "process(es); leave train.world_size out (it is recorded from the launch)")
        if t.threads:
            torch.set_num_threads(t.threads)
        seed_everything(t.seed)  # the same on every rank: random draws are sharded (shard_of), not reseeded
        self.device = resolve_device(t.device, self.ctx)
        if data is None:
            data = build_data(cfg)
        # One sampler for the global batch, the same on every rank; each rank takes its slice
        # (_real_batch): every epoch is split across ranks, reshuffled from the seed.
        self._check_batch_size(len(data))
        self.sampler = BatchSampler(len(data), cfg.data.batch_size * self.ctx.world_size, t.seed, data.name)

        m = cfg.model
        self.pair = build_pair(cfg, data.info) if pair is None else pair
        self._batch_norm_across_ranks()
        self.G, self.D = self.pair.generator.to(self.device), self.pair.discriminator.to(self.device)
        data = data.to(self.device)
        # The fast step's layout and fused forward, where these networks allow them (fast_paths.py).
        probe = data.batch(torch.arange(min(4, len(data)), device=self.device), labels=self.pair.conditional)
        probe_z = torch.randn(len(probe.x), m.z_dim, generator=torch.Generator().manual_seed(0)).to(self.device)
        # Channels-last (NHWC): convolutions, and above all nearest upsampling, run several
        # times faster in it on CPU and GPU; the data is converted once, here.
        self.channels_last = (t.channels_last and data.is_image and is_convolutional(self.D)
                              and to_channels_last(self.G, self.D, probe_z, probe.x, probe.y))
        self.data = data.to(self.device, channels_last=self.channels_last)
        self.loss = build_loss(cfg.loss)
        # DiffAugment / ADA: D is scored through the augmentation (both updates, penalties too).
        self.augment = build_augment(t.augment)
        if self.augment is not None and not data.is_image:
            raise ConfigError(f"train.augment transforms images; '{data.name}' holds {data.info.kind}: leave it unset")
        d_net = self.D if self.augment is None else AugmentedDiscriminator(self.D, self.augment)
        self.d = self._player("D", d_net, cfg.d, "d")
        self.g = self._player("G", self.G, cfg.g, "g")
        self.d.fused_forward = t.fused_d_forward and len(probe.x) > 1 and can_fuse_real_and_fake(self.D, probe.x, probe.y)
        self._warn_batch_coupling()
        self.ema = Ema(self.G, t.ema, m.z_dim, self.pair.num_classes) if t.ema > 0 else None
        if self.ema is not None:
            # The EMA is not trained: its standing statistics need no other process (and a
            # SyncBatchNorm there would make every sample grid a collective).
            revert_sync_batchnorm(self.ema.model)
        if t.compile != "none":  # after the EMA's copy of G: that copy stays eager
            compile_players(self.d, self.g, t.compile)
        self.periodic_eval = PeriodicEval(cfg, self.ema is not None, self.device, data.info)

        # Fixed noise for sample grids, from its own generator so that sampling never
        # moves the training RNG (resume stays exact whatever the sample schedule). A
        # conditional run's grid has one row per class.
        k = self.pair.num_classes
        self.grid_columns = math.ceil(t.samples / k) if k else None
        n_fixed = TOY_GRID_POINTS if not data.is_image else (k * self.grid_columns if k else t.samples)
        self.fixed_z = torch.randn(n_fixed, m.z_dim, generator=torch.Generator().manual_seed(t.seed + 1)).to(self.device)
        self.fixed_y = None
        if k:
            y = torch.arange(k).repeat_interleave(self.grid_columns) if data.is_image else torch.arange(n_fixed) % k
            self.fixed_y = y.to(self.device)
        self.step = 0          # generator updates done
        self.d_updates = 0     # discriminator updates done (lazy D penalties count these)
        self.elapsed = 0.0     # training seconds, summed over resumes
        self.rollbacks = 0     # divergences recovered from (train.on_nan=rollback)
        self.lr_scale = 1.0    # learning-rate factor after those rollbacks
        # Mixed precision: bf16 keeps fp32's exponent range and needs nothing more; fp16 needs
        # a gradient scaler per player (their losses and gradients differ by orders of magnitude).
        if t.amp == "none":
            self._autocast = contextlib.nullcontext
        else:
            dtype = torch.bfloat16 if t.amp == "bf16" else torch.float16
            self._autocast = lambda: torch.autocast(self.device.type, dtype=dtype)
        if t.amp == "fp16":
            self.d.scaler, self.g.scaler = torch.amp.GradScaler(self.device.type), torch.amp.GradScaler(self.device.type)

    def _player(self, tag: str, net: torch.nn.Module, pc, role: str) -> Player:
        penalties = [build_penalty(spec, role) for spec in pc.penalties]
        params = [p for p in net.parameters() if p.requires_grad]
        return Player(tag, net, build_optimizer(params, pc, role), penalties, build_clipper(pc.clip))

    def _batch_norm_across_ranks(self) -> None:
        """Distributed: BatchNorm normalises over each rank's share of the batch, unless
        train.sync_batchnorm=true makes it use the global batch (SyncBatchNorm, CUDA only)."""
        if not self.ctx.distributed or not any(has_batch_coupling(net) for net in
                                               (self.pair.generator, self.pair.discriminator)):
            return
        if self.cfg.train.sync_batchnorm:
            if self.device.type != "cuda":
                raise ConfigError("train.sync_batchnorm=true needs CUDA devices (PyTorch's SyncBatchNorm); on CPUs "
                                  "use BatchNorm per rank (the default) or model.g_norm/d_norm=layer")
            self.pair.generator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.pair.generator)
            self.pair.discriminator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.pair.discriminator)
        elif self.ctx.is_main:
            warnings.warn(f"BatchNorm statistics are per rank ({self.cfg.data.batch_size} samples each, not the global "
                          f"{self.cfg.data.batch_size * self.ctx.world_size}); train.sync_batchnorm=true (CUDA) "
                          "synchronises them", stacklevel=3)

    def _check_batch_size(self, n: int) -> None:
        b, world = self.cfg.data.batch_size, self.ctx.world_size
        if world > 1 and b * world > n:
            raise DataError(f"the global batch, data.batch_size={b} x {world} processes = {b * world}, is larger than "
                            f"{self.cfg.data.name} ({n} samples); lower data.batch_size or use more data")

    def _warn_batch_coupling(self) -> None:
        gp = [p.name for p in self.d.penalties if p.name in INPUT_GRADIENT_PENALTIES]
        if gp and has_batch_coupling(self.D):
            warnings.warn(
                f"the discriminator uses BatchNorm while {', '.join(gp)} penalises per-sample input "
                "gradients: each sample's gradient then depends on the rest of the batch, which the "
                "penalty assumes it does not (Gulrajani et al. 2017). Prefer model.d_norm=layer, "
                "instance or none.", stacklevel=2)

    # --- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(), "data": self.data.info.to_dict(), "step": self.step, "d_updates": self.d_updates, "elapsed": self.elapsed,
            "generator": self.G.state_dict(), "discriminator": self.D.state_dict(),
            "ema": self.ema.model.state_dict() if self.ema else None,
            "opt_g": self.g.optimizer.state_dict(), "opt_d": self.d.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(), "rng": capture_rng(), "eval": self.periodic_eval.state_dict(),
            "rollbacks": self.rollbacks, "lr_scale": self.lr_scale,
            "augment": None if self.augment is None else self.augment.state_dict(),
            "penalty_states": {p.tag: [pen.state_dict() for pen in p.penalties] for p in (self.d, self.g)},
            **{f"scaler_{p.tag.lower()}": p.scaler.state_dict() for p in (self.d, self.g) if p.scaler is not None},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_matching(self.G, state.get("generator"), "the checkpoint's generator")
        load_matching(self.D, state.get("discriminator"), "the checkpoint's discriminator")
        if self.ema is not None:
            if state.get("ema") is None:
                raise ConfigError("this checkpoint has no EMA generator; resume with train.ema=0")
            self.ema.load_state_dict(state["ema"])
        self.g.optimizer.load_state_dict(state["opt_g"])
        self.d.optimizer.load_state_dict(state["opt_d"])
        self.sampler.load_state_dict(state["sampler"])
        self.step, self.d_updates, self.elapsed = state["step"], state["d_updates"], state["elapsed"]
        self.rollbacks, self.lr_scale = state.get("rollbacks", 0), state.get("lr_scale", 1.0)
        if self.augment is not None and state.get("augment") is not None:
            self.augment.load_state_dict(state["augment"])
        for player in (self.d, self.g):
            for penalty, saved in zip(player.penalties, (state.get("penalty_states") or {}).get(player.tag, [])):
                penalty.load_state_dict(saved)
        self._apply_hyperparameters()
        for player in (self.d, self.g):
            key = f"scaler_{player.tag.lower()}"
            if player.scaler is not None and state.get(key) is not None:  # fp16: the scale it had reached
                player.scaler.load_state_dict(state[key])
        restore_rng(state["rng"])
        self.periodic_eval.load_state_dict(state.get("eval"))

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
        """Fine-tuning: start from another run's G, D and EMA weights (fresh optimisers, step 0).

        ``source`` is a run directory (its newest checkpoint) or a checkpoint file. Every
        tensor must match this run's networks in name and shape; a mismatch is an error that
        names the layer.
        """
        from .resume import newest_usable_checkpoint

        source = Path(source)
        if source.is_file():
            ckpt, state = source, load_checkpoint(source)
        elif latest_checkpoint(source) is not None:
            ckpt, state = newest_usable_checkpoint(source, quarantine=False)  # another run: leave its files be
        else:
            raise ConfigError(f"train.init_from: {source} is neither a checkpoint file nor a run directory "
                              "with checkpoints")
        for key, net in (("generator", self.G), ("discriminator", self.D)):
            load_matching(net, state.get(key), f"{key} of {ckpt}")
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"] if state.get("ema") is not None else self.G.state_dict())
        return ckpt

    def save(self, path: Path | None = None) -> Path:
        """The numbered checkpoint of this step (rotated), or ``path`` (never rotated).

        Refuses (Diverged) when any parameter, buffer or optimiser state is not finite: a
        checkpoint on disk is always one that training can continue from. Distributed: every
        rank checks its own state and they refuse together; rank 0 writes."""
        if self.ema is not None:
            self.ema.refresh_batch_stats()  # the saved EMA samples well in eval mode
        bad = first_non_finite({"G": self.G, "D": self.D, "EMA": self.ema.model if self.ema else None},
                               {"G": self.g.optimizer, "D": self.d.optimizer})
        self._raise_if_any_diverged(None if bad is None else Diverged(self.step, bad, math.nan))
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

    def _raise_if_any_diverged(self, found: Diverged | None) -> None:
        """Raise ``found``; in a distributed run, raise the earliest divergence any rank found,
        on every rank at once (one rank stopping alone would leave the others waiting)."""
        if self.ctx.distributed:
            world = self.ctx.world_size
            code = -(found.step * world + self.ctx.rank) if found is not None else -math.inf
            (agreed,) = self.ctx.agree_max([code])
            if agreed == -math.inf:
                return
            step, src = divmod(int(-agreed), world)
            key, value = self.ctx.broadcast_object(None if found is None else (found.key, found.value), src=src)
            found = Diverged(step, key if src == 0 else f"{key} (rank {src})", value)
        if found is not None:
            raise found

    def _flush(self, tracker: Tracker) -> None:
        """Write pending stats; raise Diverged (on every rank) on a non-finite value."""
        try:
            tracker.flush()
        except Diverged as exc:
            self._raise_if_any_diverged(exc)
            raise
        self._raise_if_any_diverged(None)

    # --- sampling ---------------------------------------------------------------------------

    @property
    def sampling_generator(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.G

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        G = self.sampling_generator
        was_training = G.training
        G.eval()  # BatchNorm uses running statistics: samples do not depend on the batch
        try:
            labels = [None] * math.ceil(len(z) / 256) if y is None else y.split(256)
            return torch.cat([call(G, chunk, labels_chunk) for chunk, labels_chunk in zip(z.split(256), labels)])
        finally:
            G.train(was_training)

    def write_samples(self, tracker: Tracker | None = None) -> Path:
        """The fixed-noise grid of this step (rank 0 only: it uses no training randomness)."""
        path = sample_grid_path(self.run_dir, self.step)
        if self.ema is not None:
            self.ema.refresh_batch_stats()  # every rank: the EMA's state stays the same everywhere
        if not self.ctx.is_main:
            return path
        fake = self.generate(self.fixed_z, self.fixed_y)
        if self.data.is_image:
            save_grid(fake, path, scale=2 if fake.shape[-1] <= 32 else 1, nrow=self.grid_columns)
            image = make_grid(fake, self.grid_columns)
        else:
            modes = mixture(self.data.name)[0] if self.data.protocol == "mixture" else None
            save_scatter(fake, modes, path, title=f"{self.run_dir.name} step {self.step}")
            fig = scatter_figure(fake, modes)
            image = figure_to_array(fig)
            import matplotlib.pyplot as plt

            plt.close(fig)
        if tracker is not None:
            tracker.image("Samples", image if image.shape[2] == 3 else image.repeat(3, 2), self.step)
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

    def _real_batch(self) -> Batch:
        """This rank's slice of the global batch (the whole batch in one process)."""
        index, b = self.sampler.next_index(), self.cfg.data.batch_size
        return self.data.batch(index[self.ctx.rank * b:(self.ctx.rank + 1) * b], labels=self.pair.conditional)

    def _noise(self) -> torch.Tensor:
        z_dim = self.cfg.model.z_dim
        return shard_of(lambda n: torch.randn(n, z_dim, device=self.device), self.cfg.data.batch_size)

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
            where = (f"the last good checkpoint is {self._last_ckpt}" if self._last_ckpt
                     else "no checkpoint was written")
            raise TrainingDiverged(f"{exc}; stopping ({where}). Lower the learning rate or add a "
                                   "stabiliser (see `steadygan methods`).") from exc
        tracker.close()
        return TrainResult(self.run_dir, self.step, stopped, self._last_ckpt, self._last_samples)

    def _finish(self, tracker: Tracker, stopped: str) -> None:
        """Final evaluation (unless interrupted), final checkpoint and sample grid."""
        self._flush(tracker)
        final_eval = (stopped != "interrupted" and self.periodic_eval.enabled
                      and self.periodic_eval.last_step != self.step)
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
        stop = self._agree_on_stop(interrupted)
        while self.step < t.steps:
            if t.time is not None and self.elapsed >= t.time:
                return "time"
            if stop:
                return "interrupted"
            stats = self._one_step()
            self.elapsed = time.perf_counter() - started
            stop = self._agree_on_stop(interrupted)  # and on rank 0's clock
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

    def _agree_on_stop(self, interrupted: threading.Event) -> bool:
        """Whether to stop at this step boundary. Distributed, every decision that depends on
        time or signals is taken alike on all ranks: stop when any rank got SIGINT/SIGTERM,
        and read the training clock as rank 0's (time budget, evaluation every N seconds).
        One small all-reduce per step, on the CPU."""
        if not self.ctx.distributed:
            return interrupted.is_set()
        stop, self.elapsed = self.ctx.agree_max([float(interrupted.is_set()), self.elapsed if self.ctx.is_main else 0.0])
        return stop > 0

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
