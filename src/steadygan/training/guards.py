"""What keeps a run directory truthful: one process at a time, clean stops, finite state.

* :func:`run_lock`: an exclusive ``flock`` on ``RUN/.lock`` for as long as a process trains
  into the directory. The kernel releases it when the process dies, so a lock left by a
  killed run is never stale; a second process is refused with the first one's PID.
* :func:`stop_signals`: SIGINT and SIGTERM (what ``kill``, ``timeout``, schedulers and
  container runtimes send) become a flag the loop checks between steps, so the run stops
  at a step boundary and writes a checkpoint that resumes exactly; a second signal aborts.
* :func:`first_non_finite`: the first parameter, buffer or optimiser state that is NaN/inf,
  checked before any checkpoint is written.
* :func:`agree_on_stop`, :func:`raise_earliest_divergence`: in a distributed run, decisions
  that depend on time, signals or a non-finite value are taken alike on every rank.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import signal
import threading
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..errors import ConfigError, Interrupted
from .distributed import ProcessContext
from .tracking import Diverged

LOCK_FILE = ".lock"


class RunLocked(ConfigError):
    """Another live process is training into this run directory."""


_HELD: dict[str, int] = {}  # locks this process holds, by path: re-entrant within one process


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    path = Path(run_dir) / LOCK_FILE
    key = str(path.resolve())
    if key in _HELD:  # e.g. compare holds it while it prepares the directory, then trains in it
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RunLocked(f"{run_dir} is in use by another steadygan process (PID {owner}); wait for it to "
                            "finish or stop it, or train into another directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
    finally:
        os.close(fd)  # releases the lock


def check_unlocked(run_dir: Path) -> None:
    """Refuse (RunLocked, naming the PID) when a live process trains into ``run_dir`` now."""
    path = Path(run_dir) / LOCK_FILE
    if not path.exists() or str(path.resolve()) in _HELD:
        return
    with run_lock(Path(run_dir)):
        pass


class StopFlag(threading.Event):
    """Set by a stop signal; ``signum`` says which (None while unset)."""

    signum: int | None = None

    def stop(self, signum: int) -> None:
        self.signum = signum
        self.set()


STOP_REQUESTED = StopFlag()  # worker processes: a stop signal was received; no new training


def request_stop_on_sigterm() -> None:
    """For worker processes (``compare -j N``): a SIGTERM is remembered for the rest of the
    process. One that arrives while no run trains (start-up, evaluation set-up, between
    runs) no longer kills the worker, and every later training loop stops at its first
    step boundary with a checkpoint."""
    signal.signal(signal.SIGTERM, lambda signum, frame: STOP_REQUESTED.stop(signum))
    _sticky[0] = True


_sticky = [False]  # set in worker processes: a signal during training also sets STOP_REQUESTED


@contextlib.contextmanager
def stop_signals() -> Iterator[StopFlag]:
    """A flag set by the first SIGINT or SIGTERM (or already set by :func:`request_stop_on_sigterm`);
    a second signal raises Interrupted (a KeyboardInterrupt) at once."""
    flag = StopFlag()
    if STOP_REQUESTED.is_set():
        flag.stop(STOP_REQUESTED.signum or signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if flag.is_set():
            raise Interrupted(signum)
        flag.stop(signum)
        if _sticky[0]:
            STOP_REQUESTED.stop(signum)

    for s in previous:
        signal.signal(s, handler)
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def first_non_finite(modules: dict[str, nn.Module | None],
                     optimizers: dict[str, torch.optim.Optimizer]) -> str | None:
    """The name of the first non-finite tensor among the modules' parameters and buffers
    and the optimisers' states, or None when everything is finite."""
    for name, module in modules.items():
        if module is None:
            continue
        for key, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return f"{name}.{key}"
    for name, opt in optimizers.items():
        for state in opt.state.values():
            for key, t in state.items():
                if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    return f"{name} optimiser state '{key}'"
    return None


def agree_on_stop(ctx: ProcessContext, interrupted: StopFlag, elapsed: float) -> tuple[int | None, float]:
    """The signal to stop for at this step boundary (None: go on), and the training clock.

    Distributed, every decision that depends on time or signals is taken alike on all ranks:
    stop when any rank got SIGINT/SIGTERM (for the highest-numbered signal any got), and read
    the clock as rank 0's (time budget, evaluation every N seconds). One small all-reduce per
    step, on the CPU."""
    if not ctx.distributed:
        return interrupted.signum if interrupted.is_set() else None, elapsed
    mine = float(interrupted.signum or signal.SIGTERM) if interrupted.is_set() else 0.0
    signum, elapsed = ctx.agree_max([mine, elapsed if ctx.is_main else 0.0])
    return int(signum) or None, elapsed


def raise_earliest_divergence(ctx: ProcessContext, found: Diverged | None) -> None:
    """Raise ``found``; in a distributed run, raise the earliest divergence any rank found, on
    every rank at once (one rank stopping alone would leave the others waiting)."""
    if ctx.distributed:
        world = ctx.world_size
        code = -(found.step * world + ctx.rank) if found is not None else -math.inf
        (agreed,) = ctx.agree_max([code])
        if agreed == -math.inf:
            return
        step, src = divmod(int(-agreed), world)
        key, value = ctx.broadcast_object(None if found is None else (found.key, found.value), src=src)
        found = Diverged(step, key if src == 0 else f"{key} (rank {src})", value)
    if found is not None:
        raise found


def refuse_non_finite(ctx: ProcessContext, step: int, modules: dict[str, nn.Module | None],
                      optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Raise Diverged (on every rank at once) when any rank's modules or optimiser states hold
    a non-finite value: a checkpoint on disk is always one that training can continue from."""
    bad = first_non_finite(modules, optimizers)
    raise_earliest_divergence(ctx, None if bad is None else Diverged(step, bad, math.nan))
