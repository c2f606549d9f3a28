"""The collectives the arithmetic itself calls: a no-op in one process, exact under torch.distributed.

The step, the penalties and the augmentations call these (never a process group of their
own), so that many processes compute what one process computes for the global batch:

* :func:`all_reduce_mean_`: gradients averaged in one flattened all-reduce per update, after
  every penalty term was back-propagated and before clipping and the optimiser step. No DDP
  wrapper: its bucketed hooks fire during the backward and would not see the second-order
  terms a gradient penalty adds.
* :func:`global_mean`: what parameter-gradient penalties penalise is the norm of the
  *global* gradient, not the mean of per-rank norms. It returns the across-rank mean with
  the gradient of the local value (a straight-through mean); averaging the gradients
  afterwards completes the chain rule (derivation in ARCHITECTURE.md).
* :func:`shard_of`: random draws (noise, interpolation weights) are made for the global
  batch on every rank from the same seeded stream, and each rank keeps its slice: per-rank
  values differ, every RNG state is the same on every rank (one checkpoint restores all),
  and two ranks draw exactly what one process with the global batch draws.

Joining a job, the process context and the launcher live in ``steadygan.training.distributed``.
"""

from __future__ import annotations

import pickle
import re
from functools import partial
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from ..errors import CollectiveError


def world_size() -> int:
    """Processes in the job (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce_mean_(tensors: Sequence[Tensor]) -> None:
    """Average ``tensors`` across processes in place, one all-reduce per dtype (a no-op in
    one process). Every rank must pass tensors of the same shapes in the same order."""
    world = world_size()
    if world == 1 or not tensors:
        return
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        checked(partial(dist.all_reduce, flat))
        flat.div_(world)
        for t, part in zip(group, flat.split([t.numel() for t in group])):
            t.copy_(part.view_as(t))


def global_mean(tensors: Sequence[Tensor | None]) -> list[Tensor | None]:
    """The across-rank mean of each tensor, differentiable as the *local* tensor.

    Forward: the value every rank sees is the mean over ranks (one all-reduce). Backward:
    the gradient flows into this rank's tensor unscaled, ``local + (mean - local).detach()``.
    For f(mean) computed alike on every rank, rank r's gradient is then f'(mean) * d local_r,
    and the mean of these over ranks, which the gradient all-reduce takes, is exactly
    f'(mean) * d mean: the single-process gradient for the global batch. ``None`` entries
    pass through. The identity in one process.
    """
    world = world_size()
    present = [t for t in tensors if t is not None]
    if world == 1 or not present:
        return list(tensors)
    flat = torch.cat([t.reshape(-1) for t in present])
    mean = flat.detach().clone()
    checked(lambda: dist.all_reduce(mean))
    mean.div_(world)
    out_flat = flat + (mean - flat.detach())
    parts = iter(out_flat.split([t.numel() for t in present]))
    return [None if t is None else next(parts).view_as(t) for t in tensors]


def shard_of(draw: Callable[[int], Tensor], n: int) -> Tensor:
    """This rank's ``n`` values of a random draw made for all ranks' ``n * world`` samples.

    ``draw(m)`` returns m samples along dim 0. Every rank makes the same draw (the RNG
    streams are equal on all ranks) and keeps slice ``rank``: ranks get different values,
    and together exactly what one process drawing for the global batch would get."""
    world = world_size()
    if world == 1:
        return draw(n)
    r = rank()
    return draw(n * world)[r * n:(r + 1) * n]


def gather_shards(x: Tensor) -> Tensor:
    """Every rank's ``x`` (equal shapes) concatenated along dim 0 in rank order: the global
    batch a shard belongs to; ``x`` in one process."""
    world = world_size()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    checked(lambda: dist.all_gather(parts, x.contiguous()))
    return torch.cat(parts)


def global_std(x: Tensor) -> Tensor:
    """The standard deviation (N-1) of all ranks' ``x`` together; ``x.std()`` in one process."""
    world = world_size()
    if world == 1:
        return x.std()
    sums = torch.stack([x.sum(), x.square().sum(), torch.tensor(float(x.numel()), dtype=x.dtype, device=x.device)])
    checked(lambda: dist.all_reduce(sums))
    total, squares, count = sums.unbind()
    return ((squares - total * total / count) / (count - 1)).clamp_min(0).sqrt()


def chunk_bounds(n: int, part: int, parts: int) -> tuple[int, int]:
    """[start, stop) of part ``part`` when n items are split into ``parts`` contiguous chunks."""
    base, extra = divmod(n, parts)
    start = part * base + min(part, extra)
    return start, start + base + (1 if part < extra else 0)


def checked(op: Callable[[], Any]) -> Any:
    try:
        return op()
    except (RuntimeError, pickle.UnpicklingError) as exc:  # gloo/nccl report a lost peer as RuntimeError
        raise CollectiveError(lost_peer_message(exc)) from exc


def lost_peer_message(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0]  # gloo's "[file.cc:537] Read error ...: reset."
    return f"rank {rank()}: another process of this job failed or stopped answering ({first[:120]})"
