"""Checkpoints: atomic writes, safe loads, and the RNG state that makes resume exact.

A checkpoint is a plain dict of tensors and Python primitives (state dicts, optimiser
states, step counters, RNG states, the config as a dict), never a pickled module, and it
is loaded with ``weights_only=True`` so that a checkpoint file cannot run code.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import CheckpointError, CollectiveError
from ..files import safe_write
from ..models import CLASS_HEAD
from .distributed import ProcessContext

FORMAT_VERSION = 3  # 2: data description stored; config options an architecture or optimiser ignores are None
#                    3: the fast-step options (train.share_fake, channels_last, fused_d_forward) stored
READABLE_VERSIONS = (1, 2, 3)
# Options added since format 2, with the value that reproduces what older releases computed.
ADDED_SINCE_V2 = {"share_fake": False, "channels_last": False, "fused_d_forward": False}
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


def capture_rng() -> dict[str, Any]:
    """Every global RNG the training loop draws from, in a weights_only-safe form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        # The device this process draws on: in a distributed run every rank restores it into
        # its own GPU (rank 0's other entries are GPUs it never drew from).
        "cuda_current": torch.cuda.get_rng_state() if torch.cuda.is_initialized() else None,
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": list(py_state), "gauss": py_gauss},
    }


def restore_rng(state: dict[str, Any]) -> None:
    # RNG states must be CPU byte tensors, whatever map_location the checkpoint was read with.
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
        if state.get("cuda_current") is not None:
            torch.cuda.set_rng_state(state["cuda_current"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"ckpt-{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def discard_checkpoints_after(run_dir: Path, step: int) -> None:
    """Delete the numbered checkpoints past ``step``: a rollback abandoned what they hold (a
    resume must not continue the attempt it gave up). best.pt stays: the best model the run
    made is the best, even from an attempt that later failed."""
    for path in list_checkpoints(run_dir):
        if int(_NAME.match(path.name).group(1)) > step:
            path.unlink(missing_ok=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(payload: dict[str, Any], path: Path, keep: int | None = None) -> Path:
    """Write atomically (temp file, fsync, rename), then keep only the newest ``keep``."""
    path = Path(path)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT_VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())

    safe_write(path, write)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    if keep is not None:
        for old in list_checkpoints(path.parent.parent)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: no such checkpoint") from exc
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise CheckpointError(f"{path}: not a loadable steadygan checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") not in READABLE_VERSIONS:
        raise CheckpointError(f"{path}: not a steadygan checkpoint of format {FORMAT_VERSION}")
    missing = [k for k in ("config", "step", "generator") if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: not a complete steadygan checkpoint (no {', '.join(missing)})")
    if isinstance(payload.get("config"), dict):
        payload["config"] = upgrade_config(payload["config"])
    m = _NAME.match(path.name)
    if m and int(m.group(1)) != payload["step"]:
        raise CheckpointError(f"{path}: holds step {payload['step']} but its name says step {int(m.group(1))}; "
                              "it was renamed or copied from elsewhere")
    return payload


def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config written by an older release, as this one reads it with the same meaning.

    Format 1 wrote every model and optimiser option, used or not (dcgan's depth, adam's
    momentum); format 2 leaves the unused ones unset: unset those that had no effect, so
    the config validates. Options added since (the fast step) get the values that compute
    what the older release computed, so a resumed old run continues bit for bit.
    Idempotent: a current config comes back unchanged."""
    from ..core.optim import OPTIMIZERS, OPTION_KEYS
    from ..models import MODELS

    train = config.get("train")
    if isinstance(train, dict):
        for key, old_value in ADDED_SINCE_V2.items():
            train.setdefault(key, old_value)
        if train.get("world_size") is None:  # written before distributed training: one process
            train["world_size"] = 1

    model = config.get("model", {})
    if model.get("arch") in MODELS:
        takes = MODELS.get(model["arch"]).parameters()
        for key in ("width", "depth"):
            if key not in takes:
                model[key] = None
    for player in ("d", "g"):
        pc = config.get(player, {})
        if pc.get("optimizer") in OPTIMIZERS:
            takes = OPTIMIZERS.get(pc["optimizer"]).parameters()
            for key in OPTION_KEYS:
                if key not in takes:
                    pc[key] = None
    return config


def load_matching(net: torch.nn.Module, state: dict[str, torch.Tensor] | None, what: str) -> None:
    """``net.load_state_dict(state)`` with a one-line error naming the first mismatched layer."""
    if state is None:
        raise CheckpointError(f"{what}: no weights stored")
    own = net.state_dict()
    for name, tensor in own.items():
        if name not in state:
            if name.startswith(CLASS_HEAD):
                raise CheckpointError(f"{what} has no class head: this run's D has one for a penalty that "
                                      "classifies (aux-classifier), which the checkpoint's run did not use; "
                                      "leave that penalty out")
            raise CheckpointError(f"{what} has no '{name}': the networks differ (architecture, conditioning or size)")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{what}: layer '{name}' has shape {tuple(state[name].shape)} there but "
                              f"{tuple(tensor.shape)} here; use the same model settings (or data size)")
    extra = sorted(set(state) - set(own))
    if any(name.startswith(CLASS_HEAD) for name in extra):
        raise CheckpointError(f"{what} has a class head, which this run's D lacks: its run used a penalty that "
                              "classifies (aux-classifier); keep that penalty in the config")
    if extra:
        raise CheckpointError(f"{what} has '{extra[0]}', which this run's network lacks: the networks differ")
    net.load_state_dict(state)


def save_agreed(ctx: ProcessContext, payload: Callable[[], dict[str, Any]], path: Path, keep: int | None) -> Path:
    """Rank 0 writes ``payload()`` to ``path`` (see :func:`save_checkpoint`); every rank then
    learns whether that worked, so none names a checkpoint that is not on disk, nor trains on
    after it failed. Rank 0 re-raises its own error; the others raise a CollectiveError."""
    failure = None
    if ctx.is_main:
        try:
            save_checkpoint(payload(), path, keep)
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the others know
            failure = exc
    (failed,) = ctx.agree_max([float(failure is not None)])
    if failure is not None:
        raise failure
    if failed:
        raise CollectiveError(f"rank {ctx.rank}: rank 0 could not write {path} (its message says why)")
    return path
