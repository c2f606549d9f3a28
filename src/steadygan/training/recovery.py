"""What a run does when it diverges: ``train.on_nan=rollback`` reloads the last good
checkpoint with lower learning rates, at most ``train.max_rollbacks`` times."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RecoveryOptions
from .checkpoint import load_checkpoint
from .distributed import ProcessContext
from .tracking import Diverged


@dataclass(frozen=True)
class Rollback:
    """A decision to go back: the state to load and the new learning-rate factor."""

    state: dict[str, Any]
    count: int
    lr_scale: float


def plan_rollback(options: RecoveryOptions, ctx: ProcessContext, last_checkpoint: Path | None, rollbacks: int,
                  lr_scale: float) -> Rollback | None:
    """The rollback after a divergence, or None when the run must stop (rollback is off, spent,
    or there is no checkpoint). Rank 0 reads the file; every rank continues from the same state."""
    if options.on_nan != "rollback" or rollbacks >= options.max_rollbacks or last_checkpoint is None:
        return None
    state = ctx.broadcast_object(load_checkpoint(last_checkpoint) if ctx.is_main else None)
    return Rollback(state, rollbacks + 1, lr_scale * options.rollback_lr_factor)


def report_rollback(ctx: ProcessContext, exc: Diverged, rollback: Rollback, checkpoint: Path, step: int,
                    options: RecoveryOptions) -> dict[str, float]:
    """Say on stderr what was done (rank 0), and return the stats row that records it."""
    if ctx.is_main:
        print(f"steadygan: {exc}; rolled back to {checkpoint.name} (step {step}) with learning rates "
              f"x{rollback.lr_scale:g} (rollback {rollback.count} of at most {options.max_rollbacks})",
              file=sys.stderr)
    return {"Rollback/count": rollback.count, "Rollback/lr_scale": rollback.lr_scale,
            "Rollback/diverged_at": exc.step}
