"""``steadygan train``: a new run, a resumed one, a fine-tuned one, or N processes of one."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from pathlib import Path

from ..errors import CheckpointError, ConfigError, DataError, StorageError
from .common import add_device_flag, add_seed_flag

TRAIN_EXAMPLES = """\
examples:
  steadygan train --config configs/demo-fashion-mnist.yaml
  steadygan train --config configs/r1.yaml --set d.penalties=[r1:gamma=10,every=16]
  steadygan train --set loss=wasserstein --set d.penalties=[wgan-gp] --set train.n_critic=5
  steadygan train --config configs/gc-gan.yaml --set d.clip=value:eps=0.05 --time 600
  steadygan train --config configs/ring8.yaml --steps 5000 --eval-every 500
  steadygan train --config configs/demo-fashion-mnist.yaml --eval-seconds 60   # FID curve over time
  steadygan train --resume runs/00003-demo --steps 20000     # continue to 20k steps
  steadygan train --init-from runs/00003-demo --data-dir my-idx/ --set data.name=idx --steps 500  # fine-tune

Penalties and clippers are specs: 'name' or 'name:key=value,...', e.g. r1:gamma=10,every=16,
seed-param:lambda=0.1,target=output, value:eps=0.01, norm:max_norm=1, agc:clipping=0.02.
`steadygan methods` lists every name; unknown keys and names are errors that list the choices.
"""



def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train a GAN (or resume one)", epilog=TRAIN_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a GAN from a YAML config plus --set overrides. Writes a numbered run "
                                   "directory (config.yaml, stats.jsonl, tensorboard/, samples/, checkpoints/).")
    p.add_argument("--config", "-c", help="YAML config file (see configs/); defaults apply to missing keys")
    p.add_argument("--set", "-s", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set d.lr=1e-4 (repeatable; values are YAML)")
    p.add_argument("--data-dir", help="dataset folder (same as --set data.root=...)")
    p.add_argument("--steps", type=int, help="generator steps to train (train.steps)")
    p.add_argument("--time", type=float, help="wall-clock budget in seconds (train.time)")
    p.add_argument("--out", help="parent folder of run directories (train.out_dir, default runs/)")
    p.add_argument("--name", help="suffix of the run directory name (train.name)")
    add_device_flag(p, None, "device (train.device, default auto)")
    add_seed_flag(p, "random seed (train.seed)", default=None)
    p.add_argument("--eval-every", type=int, metavar="N",
                   help="score the generator every N steps (FID/KID/PR, or modes for 2-D data) into "
                        "stats.jsonl and keep checkpoints/best.pt (train.eval_every; see train.eval_*)")
    p.add_argument("--eval-seconds", type=float, metavar="S",
                   help="or every S seconds of training (train.eval_seconds)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its newest checkpoint, exactly")
    p.add_argument("--init-from", metavar="RUN", help="fine-tune: start a new run from RUN's G, D and EMA weights "
                                                      "(a run directory or checkpoint file; fresh optimisers)")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: accept a config that differs from the checkpoint's")
    p.add_argument("--on-nan", choices=("stop", "rollback"),
                   help="when a loss or weight turns NaN/inf: stop (default), or reload the last good checkpoint "
                        "with learning rates x train.rollback_lr_factor, at most train.max_rollbacks times")
    p.add_argument("--on-failure", choices=("warn", "stop", "heal"),
                   help="when the health status turns failing (mode collapse, a class drawn without variety, "
                        "FID blowing up, class KL past ln 2): warn (default: say so, change nothing), stop with a "
                        "checkpoint, or heal: go back to the newest healthy state and try the next remedy of "
                        "train.heal_ladder; a NaN heals too (README: When a run goes wrong)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train on N processes of this machine (each with torchrun's environment, on loopback); "
                        "data.batch_size is per process, the global batch N times it. Several machines: run "
                        "`torchrun --nnodes ... -m steadygan train ...` on each (README: Scaling out)")
    p.add_argument("--dist-timeout", type=float, default=600.0, metavar="S",
                   help="distributed runs: a process that waits S seconds for another (hung, or lost without a "
                        "closed connection) stops with an error instead of waiting forever (default 600)")
    p.set_defaults(func=cmd_train)
    return p


def _train_overrides(args: argparse.Namespace) -> list[str]:
    sets = list(args.set or [])
    for flag, key in (("data_dir", "data.root"), ("steps", "train.steps"), ("time", "train.time"),
                      ("out", "train.out_dir"), ("name", "train.name"), ("device", "train.device"),
                      ("seed", "train.seed"), ("eval_every", "train.eval_every"),
                      ("eval_seconds", "train.eval_seconds"), ("init_from", "train.init_from"),
                      ("on_nan", "train.on_nan"), ("on_failure", "train.on_failure")):
        value = getattr(args, flag)
        if flag == "data_dir" and value is not None:  # stored in the run: it must mean the same from elsewhere
            value = Path(value).expanduser().resolve()
        if value is not None:
            sets.append(f"{key}={value}")
    if args.no_progress:
        sets.append("train.progress=false")
    return sets


def cmd_train(args: argparse.Namespace) -> int:
    from ..errors import CollectiveError, TrainingDiverged
    from ..training.distributed import init_from_environment, launch_local, launched_by_torchrun, shutdown

    if args.resume and args.init_from:
        raise ConfigError("--resume continues a run with its own weights; --init-from starts a new one from "
                          "another run's: give one of them")
    if not (args.dist_timeout > 0 and math.isfinite(args.dist_timeout)):
        raise ConfigError(f"--dist-timeout must be > 0 seconds (got {args.dist_timeout:g})")
    if args.nproc is not None:
        if args.nproc < 1:
            raise ConfigError(f"--nproc must be >= 1 (got {args.nproc})")
        if args.nproc > 1 and not launched_by_torchrun():
            if not args.resume:
                from ..training.resume import fine_tune_config

                fine_tune_config(args.config, _train_overrides(args))  # a bad config: one line here, not N
            return launch_local(args.nproc, args.argv)
    ctx = init_from_environment(args.device or "auto", args.dist_timeout)
    agreed = False  # every rank ends the same way: they may wait for each other before leaving
    try:
        code = _train_in_context(args, ctx)
        agreed = code == 0 or code > 128  # finished or stopped together; 2: this rank left rank 0 reporting
        return code
    except TrainingDiverged:
        agreed = True  # divergence is decided collectively
        raise
    except CollectiveError as exc:  # the trainer's message names the run and its last checkpoint
        print(f"steadygan train: error: {exc}", file=sys.stderr)
        return 4
    finally:
        # After an error on this rank alone, leave at once: the others then see the closed
        # connection and stop (waiting for them here would hang until --dist-timeout).
        shutdown(wait_s=30.0 if agreed else 0.0)


def _train_in_context(args: argparse.Namespace, ctx) -> int:
    """Rank 0 reads the config (and, resuming, the run's checkpoint) and hands both to the
    other ranks, which never read the run directory: only rank 0 needs to see it."""
    from ..training.build import config_from_dict
    from ..training.resume import fine_tune_config
    from ..training.trainer import train

    overrides = _train_overrides(args)
    resolved, error = None, None
    if ctx.is_main:
        try:
            if args.resume:
                from ..training.guards import check_unlocked
                from ..training.resume import resume_config

                check_unlocked(Path(args.resume))  # a live run's PID before anything about its checkpoints
                cfg, payload = resume_config(Path(args.resume), args.config, overrides, args.allow_config_change,
                                             ctx.world_size)
            else:
                cfg, payload = fine_tune_config(args.config, overrides), None
            resolved = (cfg.to_dict(), payload)
        except (ConfigError, DataError, CheckpointError, StorageError) as exc:
            error = exc
    if ctx.distributed:
        shared = ctx.broadcast_object(("error", str(error)) if error is not None else ("ok", resolved))
        if shared[0] == "error" and not ctx.is_main:
            return 2  # rank 0 reports it
        resolved = shared[1]
    if error is not None:
        raise error
    config, payload = resolved
    cfg = config_from_dict(config)
    result = train(cfg, run_dir=Path(args.resume) if args.resume else None, resume=payload)
    if not ctx.is_main:  # the same exit status as rank 0's; it alone says why
        if result.stopped == "interrupted":
            return 128 + (result.signal or signal.SIGINT)
        return 3 if result.stopped == "failing" else 0
    print(f"run directory: {result.run_dir}")
    if ctx.distributed:
        print(f"{ctx.world_size} processes x batch {cfg.data.batch_size} = global batch "
              f"{ctx.world_size * cfg.data.batch_size}")
    print(f"stopped after {result.step} steps ({result.stopped}); checkpoint: {result.checkpoint}")
    print(f"samples: {result.samples}")
    if result.stopped == "interrupted":
        launch = f"steadygan train --nproc {ctx.world_size}" if ctx.distributed else "steadygan train"
        print(f"resume with: {launch} --resume {result.run_dir}")
        return 128 + (result.signal or signal.SIGINT)  # stopped by a signal: the shell's convention
    if result.stopped == "failing":  # train.on_failure=stop, or heal with its ladder spent
        n = result.remedies
        spent = f" after {n} remed{'y' if n == 1 else 'ies'} (the heal ladder is spent)" if n else ""
        print(f"steadygan train: the run is failing ({result.health}){spent}; stopped with its checkpoint "
              f"(steadygan health {result.run_dir} shows when it went wrong)", file=sys.stderr)
        return 3
    return 0
