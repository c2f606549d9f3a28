"""What tests/test_distributed.py runs inside each process of a spawned job.

Run as ``python tests/distributed_scenarios.py SCENARIO OUT [ARGS...]`` with torchrun's
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); in one process
(no such environment) the same functions give the single-process reference.
"""

from __future__ import annotations

import os
import sys

import torch
from torch import nn

from steadygan.config import parse_spec
from steadygan.core.clipping import build_clipper
from steadygan.core.collectives import rank, world_size
from steadygan.core.losses import build_loss
from steadygan.core.penalties import build_penalty
from steadygan.core.step import Player, d_step, g_step
from steadygan.training.distributed import init_from_environment, shutdown

# Per-rank batch; a single process runs the global batch of WORLD * this.
PER_RANK = 6
WORLD = 2
ITERATIONS = 3

# name -> (loss, D penalty specs, G penalty specs, D clipper, G clipper)
METHODS: dict[str, tuple] = {
    "none": ("non-saturating", [], [], None, None),
    "r1": ("non-saturating", ["r1:gamma=1"], [], None, None),
    "r2": ("non-saturating", ["r2:gamma=1"], [], None, None),
    "wgan-gp": ("wasserstein", ["wgan-gp:lambda=10"], [], None, None),
    "zero-gp": ("non-saturating", ["zero-gp:lambda=1"], [], None, None),
    "dragan": ("non-saturating", ["dragan:lambda=1"], [], None, None),
    "seed-param": ("non-saturating", ["seed-param:lambda=1"], ["seed-param:lambda=1"], None, None),
    "consensus": ("non-saturating", ["consensus:gamma=1"], ["consensus:gamma=1"], None, None),
    "nk": ("non-saturating", [], ["nk:eta=1"], None, None),
    "value-clip": ("non-saturating", [], [], "value:eps=0.01", None),
    "norm-clip": ("non-saturating", [], [], "norm:max_norm=0.1", "norm:max_norm=0.1"),
    "lazy-r1": ("non-saturating", ["r1:gamma=1,every=2"], [], None, None),
}


def networks() -> tuple[nn.Module, nn.Module]:
    """A BatchNorm-free pair on 1x8x8 images; tanh keeps second derivatives non-zero, so
    the double-backward terms of the penalties matter."""
    g = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)))
    d = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(64, 1))
    return g, d


def run_method(name: str) -> dict[str, torch.Tensor]:
    """ITERATIONS (D, G) updates of one method on this rank's share of a fixed global batch;
    returns both networks' parameters."""
    loss_name, d_pen, g_pen, d_clip, g_clip = METHODS[name]
    torch.manual_seed(0)
    G, D = networks()
    data = torch.Generator().manual_seed(1)
    n, r = PER_RANK * WORLD, rank()  # the global batch, in one process or split over WORLD ranks
    mine = slice(r * PER_RANK, (r + 1) * PER_RANK) if world_size() > 1 else slice(None)

    def player(tag, net, specs, clip, role):
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.5, 0.999))
        return Player(tag, net, opt, [build_penalty(parse_spec(s, "penalty"), role) for s in specs],
                      build_clipper(parse_spec(clip, "clipper")))

    d, g = player("D", D, d_pen, d_clip, "d"), player("G", G, g_pen, g_clip, "g")
    loss = build_loss(loss_name)
    for step in range(ITERATIONS):
        real = torch.randn(n, 1, 8, 8, generator=data).tanh()[mine]
        z_d, z_g = torch.randn(n, 4, generator=data)[mine], torch.randn(n, 4, generator=data)[mine]
        d_step(d, g, loss, real, z_d, step)
        g_step(g, d, loss, real, z_g, step)
    return {**{f"G.{k}": v.detach().clone() for k, v in G.named_parameters()},
            **{f"D.{k}": v.detach().clone() for k, v in D.named_parameters()}}


def step_equivalence(out: str) -> None:
    torch.set_default_dtype(torch.float64)
    init_from_environment("cpu", timeout_s=60)
    results = {name: run_method(name) for name in METHODS}
    torch.save(results, out.format(rank=rank()))
    shutdown()


def train_cli(out: str, *argv: str) -> None:
    """``steadygan train ARGV`` in float64 (the trainer-level equivalence), exit code as is."""
    from steadygan.cli import main

    torch.set_default_dtype(torch.float64)
    sys.exit(main(list(argv)))


def train_with_nan_on_rank1(out: str, *argv: str) -> None:
    """``steadygan train ARGV`` where rank 1 alone sees a NaN loss from its sixth D update on."""
    import steadygan.core.step as step_module
    from steadygan.cli import main

    if os.environ.get("RANK") == "1":
        calls = [0]
        original = step_module.d_step

        def d_step_with_nan(*args, **kwargs):
            stats = original(*args, **kwargs)
            calls[0] += 1
            if calls[0] >= 6:
                stats["Loss/D"] = stats["Loss/D"] * float("nan")
            return stats

        step_module.d_step = d_step_with_nan
        import steadygan.training.iteration as iteration_module

        iteration_module.d_step = d_step_with_nan
    sys.exit(main(list(argv)))


def train_failing_on_rank0(out: str, *argv: str) -> None:
    """``steadygan train ARGV`` where rank 0 alone judges every probe a collapse (from 6 steps
    after the start or a rollback); rank 1 keeps the usual rule and would see nothing wrong."""
    import functools

    from steadygan.cli import main
    from steadygan.training import health

    if os.environ.get("RANK") == "0":
        health.HealthRule = functools.partial(health.HealthRule, collapse_diversity=10.0, low_diversity=10.0,
                                              collapse_probes=1, warm_up=6)
    sys.exit(main(list(argv)))


def train_with_full_disk_on_rank0(out: str, *argv: str) -> None:
    """``steadygan train ARGV`` where rank 0's checkpoint writes fail as on a full disk."""
    import errno

    import steadygan.training.checkpoint as checkpoint_module
    from steadygan.cli import main

    if os.environ.get("RANK") == "0":
        def full(obj, f, *args, **kwargs):  # torch.save inside the atomic writer
            raise OSError(errno.ENOSPC, "No space left on device")

        checkpoint_module.torch.save = full
    sys.exit(main(list(argv)))


if __name__ == "__main__":
    scenario, out, *rest = sys.argv[1:]
    globals()[scenario](out, *rest)
