"""Choosing what a resumed run continues from, and refusing what it must not continue from.

* The newest checkpoint that loads and holds only finite numbers is used; each newer one
  that does not (truncated by a kill or a full disk, or written by an older release before
  the finiteness check) is skipped with a warning naming it and why.
* A checkpoint must belong to its run: its data, model and seed must be those of the run's
  ``config.yaml`` (a checkpoint copied in from another run is refused, naming both), and the
  step inside must match its file name (checked on load).
* The config may change between a run and its resume only in keys that say how long and how
  loudly it runs; ``--allow-config-change`` also admits the keys the trainer rebuilds from the
  config (learning rates and other optimiser options, losses, penalties, clippers, n_critic,
  EMA decay), which then take effect. What the networks, the data, the random streams and the
  optimiser states were built from (``data.*``, ``model.*``, ``train.seed``, the optimiser
  types) can never change on resume.
* Configs written by an older release are read as the current one reads them (format-1
  options unset, new keys at their defaults) before they are compared.

Fine-tuning (``train.init_from``) starts a new run from another run's weights: :func:`init_from`.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import RESUMABLE_CHANGES, Config, apply_override, diff_configs, read_config_file
from ..core.ema import Ema
from ..errors import CheckpointError, ConfigError
from ..models import CLASS_HEAD
from .build import config_from_dict, load_config
from .checkpoint import (
    ADDED_SINCE_V2,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_matching,
    upgrade_config,
)

# What the networks, the data, the random streams and the optimiser states were built from.
FIXED_ON_RESUME = ("data.", "model.", "train.seed", "d.optimizer", "g.optimizer")


def normalised(config: dict[str, Any], what: str) -> dict[str, Any]:
    """A stored config as the current release reads it (format-1 options unset, defaults for
    keys added since): configs written by different releases compare by meaning."""
    try:
        return config_from_dict(upgrade_config(copy.deepcopy(config))).to_dict()
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from exc


def _fixed(key: str) -> bool:
    return any(key == p or key.startswith(p) for p in FIXED_ON_RESUME)


def _non_finite(payload: dict[str, Any]) -> str | None:
    def tensors(obj: Any, where: str):
        if isinstance(obj, torch.Tensor):
            yield where, obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                yield from tensors(v, f"{where}.{k}" if where else str(k))
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                yield from tensors(v, f"{where}[{i}]")

    for part in ("generator", "discriminator", "ema", "opt_g", "opt_d"):
        for where, t in tensors(payload.get(part), part):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return where
    return None


SKIPPED_SUFFIX = ".skipped"


def newest_usable_checkpoint(run_dir: Path, quarantine: bool = True) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of ``run_dir`` that loads and is finite; warns about each one skipped.

    With ``quarantine`` (a resume of this run) each skipped file is renamed to
    ``ckpt-N.pt.skipped``: it no longer counts as the newest checkpoint, takes no place in
    the rotation, and stays on disk for inspection.
    """
    found = list_checkpoints(run_dir)
    if not found:
        raise ConfigError(f"{run_dir}: no checkpoint to resume from (expected {run_dir}/checkpoints/ckpt-*.pt)")
    reasons = []
    for path in reversed(found):
        try:
            payload = load_checkpoint(path)
            bad = _non_finite(payload)
            reason = None if bad is None else f"{path}: it holds non-finite values ({bad})"
        except CheckpointError as exc:
            payload, reason = None, str(exc)
        if reason is None:
            return path, payload
        reasons.append(reason)
        if quarantine:
            path.rename(path.with_name(path.name + SKIPPED_SUFFIX))
            reason += f"; moved aside to {path.name}{SKIPPED_SUFFIX}"
        print(f"warning: skipping {reason}", file=sys.stderr)
    raise CheckpointError(f"{run_dir}: no usable checkpoint ({'; '.join(reasons)})")


def check_belongs(run_dir: Path, ckpt: Path, payload: dict[str, Any]) -> None:
    """Refuse a checkpoint whose data, model or seed are not those of the run's config.yaml."""
    own = Path(run_dir) / "config.yaml"
    if not own.exists():
        return
    run_config = normalised(read_config_file(own), str(own))
    differs = [k for k in diff_configs(run_config, normalised(payload["config"], str(ckpt))) if _fixed(k)]
    if differs:
        raise CheckpointError(f"{ckpt} does not belong to {run_dir}: its {', '.join(differs)} differ from "
                              f"{own}; it was copied from another run")


def keep_stored_arithmetic(cfg: Config, stored: dict[str, Any]) -> None:
    """A run whose stored config predates the fast-step options (``ADDED_SINCE_V2``)
    continues on the arithmetic that trained it: in ``cfg``, those options take the values
    older releases computed with. ``stored`` is the run's config as it was written."""
    train = stored.get("train") if isinstance(stored, dict) else None
    for key, old_value in ADDED_SINCE_V2.items():
        if not isinstance(train, dict) or key not in train:
            setattr(cfg.train, key, old_value)


def resume_config(run_dir: Path, config_path: str | None, overrides: list[str],
                  allow_change: bool, world_size: int = 1) -> tuple[Config, dict[str, Any]]:
    """The config to continue ``run_dir`` with and the checkpoint state to load;
    ``world_size``: the processes this resume was launched with."""
    run_dir = Path(run_dir)
    ckpt, payload = newest_usable_checkpoint(run_dir)
    check_belongs(run_dir, ckpt, payload)
    saved = normalised(payload["config"], str(ckpt))
    data = read_config_file(config_path) if config_path else copy.deepcopy(saved)
    if config_path:  # how the step computes is the run's own unless the file says otherwise
        train = data.setdefault("train", {}) if isinstance(data.get("train", {}), dict) else {}
        for key in ADDED_SINCE_V2:
            train.setdefault(key, saved["train"][key])
    for assignment in overrides:
        apply_override(data, assignment)
    cfg = config_from_dict(data)
    cfg.train.world_size = world_size  # recorded from the launch, compared below
    changed = [k for k in diff_configs(saved, cfg.to_dict()) if k not in RESUMABLE_CHANGES]
    before = saved["train"]["world_size"]
    if "train.world_size" in changed and not allow_change:
        batch_before, batch = saved["data"]["batch_size"], cfg.data.batch_size
        raise ConfigError(f"{run_dir} trained on {before} process(es) (global batch {batch_before * before}); resume "
                          f"it with as many (steadygan train --nproc {before}, or torchrun --nproc-per-node), or pass "
                          f"--allow-config-change to continue on {world_size} (global batch {batch * world_size})")
    fixed = [k for k in changed if _fixed(k)]
    if fixed:
        raise ConfigError(f"cannot resume {run_dir} with another {', '.join(fixed)}: the checkpoint's networks, "
                          "data, random streams and optimiser states were built from them; start a new run "
                          "(or --init-from it)")
    if changed and not allow_change:
        raise ConfigError(
            f"refusing to resume {run_dir}: the config changed in {', '.join(changed)} "
            "(a resumed run would no longer be the run it claims to be). Pass "
            "--allow-config-change to resume with the change applied, or start a new run."
        )
    print(f"resuming {run_dir} from {ckpt.name} (step {payload['step']})", file=sys.stderr)
    if payload["step"] >= cfg.train.steps:
        print(f"note: the run is already at step {payload['step']}, train.steps is {cfg.train.steps}: nothing to "
              f"train (raise --steps to continue it)", file=sys.stderr)
    return cfg, payload


def init_from(source: str | Path, generator: nn.Module, discriminator: nn.Module, ema: Ema | None) -> Path:
    """Fine-tuning: load another run's G, D and EMA weights into these networks (the new run
    keeps its fresh optimisers and starts at step 0); returns the checkpoint read.

    ``source`` is a run directory (its newest usable checkpoint) or a checkpoint file. Every
    tensor must match these networks in name and shape (D's auxiliary class head aside: see
    :func:`with_own_class_head`); a mismatch is an error that names the layer. Without a stored
    EMA the new EMA starts from the source's generator."""
    source = Path(source)
    if source.is_file():
        ckpt, state = source, load_checkpoint(source)
    elif latest_checkpoint(source) is not None:
        ckpt, state = newest_usable_checkpoint(source, quarantine=False)  # another run: leave its files be
    else:
        raise ConfigError(f"train.init_from: {source} is neither a checkpoint file nor a run directory "
                          "with checkpoints")
    load_matching(generator, state.get("generator"), f"generator of {ckpt}")
    load_matching(discriminator, with_own_class_head(state.get("discriminator"), discriminator, ckpt),
                  f"discriminator of {ckpt}")
    if ema is not None:
        ema.load_state_dict(state["ema"] if state.get("ema") is not None else generator.state_dict())
    return ckpt


def with_own_class_head(state: dict[str, Any] | None, discriminator: nn.Module, ckpt: Path) -> dict[str, Any] | None:
    """The source D's weights with this run's choice of class head: the head is an auxiliary
    built when a config names a penalty that classifies (``aux-classifier``), so a run
    fine-tuned without one leaves the source's head out, and one that adds a head starts it
    fresh. Either way D's own score is the source's."""
    if state is None:
        return None
    own = {k: v for k, v in discriminator.state_dict().items() if k.startswith(CLASS_HEAD)}
    theirs = [k for k in state if k.startswith(CLASS_HEAD)]
    if theirs and not own:
        print(f"fine-tuning: the class head of {ckpt}'s discriminator is left out (this run names no penalty "
              "that classifies)", file=sys.stderr)
    elif own and not theirs:
        print(f"fine-tuning: the discriminator's class head starts fresh ({ckpt} has none)", file=sys.stderr)
    else:
        return state
    return {**{k: v for k, v in state.items() if not k.startswith(CLASS_HEAD)}, **own}


def source_config(source: str | Path) -> tuple[Path, dict[str, Any]]:
    """The config a fine-tuning source was trained with (a run directory's config.yaml, or the
    config inside a checkpoint file), as the current release reads it."""
    source = Path(source)
    if source.is_dir() and (source / "config.yaml").is_file():
        where = source / "config.yaml"
        return where, normalised(read_config_file(where), str(where))
    if source.is_file():
        return source, normalised(load_checkpoint(source)["config"], str(source))
    if latest_checkpoint(source) is not None:
        where, payload = newest_usable_checkpoint(source, quarantine=False)
        return where, normalised(payload["config"], str(where))
    raise ConfigError(f"train.init_from: {source} is neither a checkpoint file nor a run directory with checkpoints")


def fine_tune_config(config_path: str | None, overrides: list[str]) -> Config:
    """A new run's config; with ``train.init_from`` its ``model.*`` keys default to the source
    run's (the networks must be the same to take their weights). A model key the config file
    or an override sets to another value is refused, naming it and the source's value."""
    cfg = load_config(config_path, overrides)
    if not cfg.train.init_from:
        return cfg
    where, source = source_config(cfg.train.init_from)
    data = read_config_file(config_path) if config_path else {}
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    data["model"] = {**source["model"], **model}
    for assignment in overrides:
        apply_override(data, assignment)
    cfg = config_from_dict(data)
    ours = cfg.to_dict()["model"]
    differs = [f"model.{k}={source['model'][k]!r} there, {ours[k]!r} here"
               for k in ours if ours[k] != source["model"][k]]
    if differs:
        raise ConfigError(f"train.init_from: {where} was trained with other networks ({'; '.join(differs)}); "
                          "leave these keys out to take the source's, or start without --init-from")
    return cfg
