"""Many processes, one run: joining the job, the process context, and the local launcher.

steadygan runs on torch.distributed as launched by ``torchrun`` (or ``steadygan train
--nproc N``, which calls :func:`launch_local`), with gloo on CPUs and nccl on GPUs. Every
rank runs the same algorithm on its share of the global batch (``data.batch_size`` per
rank); the collectives the arithmetic calls (``steadygan.core.collectives``) make the result
the single-process result for the global batch.

Decisions that must be the same everywhere (stop on a signal or the time budget, evaluate
now, diverged) are taken from values agreed through :meth:`ProcessContext.agree_max`, on a
gloo group even when training runs on nccl, so the agreement never waits on a GPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..core.collectives import checked
from ..errors import ConfigError


@dataclass
class ProcessContext:
    """Who this process is in the job; built once at start and handed to the trainer.

    ``is_main`` (rank 0) alone creates the run directory and writes stats, TensorBoard,
    sample grids, checkpoints and reports; the other ranks compute and stay silent.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    control: Any = field(default=None, repr=False)  # gloo process group for agreements

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def current(cls) -> ProcessContext:
        """The context of an already initialised torch.distributed job (or a single process).
        Built once per job: the control group it creates is itself a collective."""
        global _CURRENT
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return SINGLE_PROCESS
        if _CURRENT is None or _CURRENT.rank != dist.get_rank():
            control = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
            _CURRENT = cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), control)
        return _CURRENT

    def device(self, name: str) -> torch.device:
        """``train.device`` for this rank: on GPUs each rank takes the one of its local rank."""
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(name)
        if device.type == "cuda" and self.distributed:
            if device.index is not None and device.index != self.local_rank:
                raise ConfigError(f"train.device={name} in a distributed run: give train.device=cuda and each "
                                  "process takes the GPU of its local rank")
            device = torch.device("cuda", self.local_rank)
        return device

    # --- agreements (on the control group) ----------------------------------------------

    def agree_max(self, values: Sequence[float]) -> list[float]:
        """The element-wise maximum of ``values`` over ranks (float64, on the CPU)."""
        if not self.distributed:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        checked(lambda: dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control))
        return t.tolist()

    def broadcast_object(self, obj: Any = None, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every rank (pickled, sent through the CPU)."""
        if not self.distributed:
            return obj
        box = [obj if self.rank == src else None]
        checked(lambda: dist.broadcast_object_list(box, src=src, group=self.control))
        return box[0]

    def gather_to_main(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere)."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        checked(lambda: dist.gather_object(obj, out, dst=0, group=self.control))
        return out

    def barrier(self) -> None:
        if self.distributed:
            checked(lambda: dist.barrier(group=self.control))

    def broadcast_modules(self, modules: Sequence[nn.Module | None], buffers_only: bool = False) -> None:
        """Rank 0's parameters and buffers (or buffers alone) on every rank, one broadcast per dtype."""
        if not self.distributed:
            return
        tensors = [t for m in modules if m is not None
                   for t in ([] if buffers_only else list(m.parameters())) + list(m.buffers())]
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        with torch.no_grad():
            for group in by_dtype.values():
                flat = torch.cat([t.reshape(-1) for t in group])
                checked(partial(dist.broadcast, flat, src=0))
                for t, part in zip(group, flat.split([t.numel() for t in group])):
                    t.copy_(part.view_as(t))


SINGLE_PROCESS = ProcessContext()
_CURRENT: ProcessContext | None = None


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_environment(device: str = "auto", timeout_s: float = 600.0) -> ProcessContext:
    """Join the job ``torchrun`` described in the environment (RANK, WORLD_SIZE,
    MASTER_ADDR, ...); a single-process context when there is none.

    With CUDA (and ``device`` not cpu) the group carries CPU tensors on gloo and CUDA
    tensors on nccl, each rank on the GPU of its local rank; otherwise gloo. A collective
    that waits longer than ``timeout_s`` fails instead of hanging."""
    if dist.is_available() and dist.is_initialized():
        return ProcessContext.current()
    if not launched_by_torchrun():
        return SINGLE_PROCESS
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed: run one process")
    gpus = device != "cpu" and torch.cuda.is_available() and dist.is_nccl_available()
    if gpus:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    try:
        dist.init_process_group("cpu:gloo,cuda:nccl" if gpus else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"could not join the distributed job ({str(exc).splitlines()[0][:200]}); "
                          "check torchrun's --rdzv/--master flags") from exc
    return ProcessContext.current()


def shutdown(wait_s: float = 30.0) -> None:
    """Leave the job. Every rank first waits (at most ``wait_s``) for the others to arrive
    here too: a rank that tears its connections down while a peer still uses them makes
    gloo abort that peer. A peer that died or hangs only shortens or ends the wait."""
    global _CURRENT
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1 and wait_s > 0:
            group = _CURRENT.control if _CURRENT is not None else None
            try:
                dist.monitored_barrier(group=group, timeout=datetime.timedelta(seconds=wait_s))
            except RuntimeError:
                pass
        dist.destroy_process_group()
    _CURRENT = None


# --- the local launcher: `steadygan train --nproc N` ------------------------------------------


def launch_local(nproc: int, argv: list[str]) -> int:
    """``steadygan train --nproc N ...``: N processes of ``steadygan train ...`` on this machine
    with torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT on loopback). Each runs
    in its own session: a Ctrl-C in the terminal reaches this process only, which passes
    SIGTERM to every process once (each then stops at the same step with a checkpoint).
    Returns rank 0's exit code (or another rank's, if rank 0 succeeded and it did not); after
    a stop by a signal this launcher received, 128 + that signal's number."""
    if nproc > (os.cpu_count() or 1):
        print(f"warning: {nproc} processes on {os.cpu_count()} cores: they will share them and run slowly",
              file=sys.stderr)
    procs = _spawn(nproc, _without_nproc(argv))
    received: list[int] = []

    def forward(signum, frame):  # the first signal stops every process at a step boundary; a second aborts
        received.append(signum)
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        _wait(procs)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    codes = [128 - p.returncode if p.returncode < 0 else p.returncode for p in procs]  # killed by signal N: 128+N
    code = codes[0] if codes[0] != 0 else next((c for c in codes if c != 0), 0)
    if received and code == 128 + signal.SIGTERM:  # stopped cleanly on the signal this launcher passed on
        code = 128 + received[0]
    if all(p.returncode < 0 for p in procs):  # killed outright (128 + N by their own hand is a clean stop)
        print("steadygan train: every process was stopped by a signal before it could write a checkpoint",
              file=sys.stderr)
    return code


def _without_nproc(argv: list[str]) -> list[str]:
    rest, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--nproc":
            skip = True
        elif not token.startswith("--nproc="):
            rest.append(token)
    return rest


def _spawn(nproc: int, argv: list[str]) -> list[subprocess.Popen]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    threads = str(max(1, (os.cpu_count() or 1) // nproc))  # the cores shared, not oversubscribed
    procs = []
    for rank in range(nproc):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        env.setdefault("OMP_NUM_THREADS", threads)
        procs.append(subprocess.Popen([sys.executable, "-m", "steadygan", *argv], env=env, start_new_session=True,
                                      preexec_fn=_stop_with_parent))
    return procs


def _wait(procs: list[subprocess.Popen]) -> None:
    """Until every process has ended. A failed process makes the others fail within seconds
    (closed connections); one that outlives that by a minute is stopped."""
    deadline = None
    while any(p.poll() is None for p in procs):
        if deadline is None and any(p.poll() not in (None, 0) for p in procs):
            deadline = time.monotonic() + 60
        if deadline is not None and time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        time.sleep(0.05)


def _stop_with_parent() -> None:
    """In a launched process (Linux): SIGTERM when the launcher dies (a closed terminal, kill -9), so
    no process trains on unseen; it then stops at a step boundary with a checkpoint."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
