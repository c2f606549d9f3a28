"""What a run does when it goes wrong: go back to a good state and change what failed.

One path for both triggers, a divergence (a non-finite value) and a failing health status
(``steadygan.training.health``). Each recovery loads a state and applies the next rung of a
ladder of remedies; when the ladder is spent the run stops as it would have without one.

* ``train.on_failure=heal``: either trigger. The state is the newest snapshot taken while the
  run was healthy, kept in memory every ``train.heal_every`` steps (failures come within a few
  hundred steps; checkpoints every thousand would lose most of the run). Checkpoints carry it,
  so a resumed run rolls back where an uninterrupted one would. The ladder is
  ``train.heal_ladder`` or :data:`DEFAULT_LADDER`.
* ``train.on_nan=rollback`` alone: a divergence only. The state is the newest checkpoint and
  the ladder ``train.max_rollbacks`` rungs of ``lr_scale=train.rollback_lr_factor`` (what this
  option has always done).

A rung is a list of config overrides (``key=value``, as ``--set`` takes) on the keys of the
game (the players' learning rates, betas, penalties and clippers, the loss, the augmentation,
n_critic) and ``lr_scale=F``, which multiplies both learning rates. Rungs accumulate.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig, apply_override
from ..errors import ConfigError
from ..files import atomic_write_text
from .checkpoint import load_checkpoint
from .distributed import ProcessContext

# Chosen from the lab's failing settings (BENCHMARKS.md, "Where GANs fail"): the recipe that
# failed least there (the non-saturating loss with R1, gamma 10), then Adam without momentum at
# half the learning rates (the first failing setting is beta1 = 0.9), then DiffAugment.
DEFAULT_LADDER: tuple[tuple[str, ...], ...] = (
    ("loss=non-saturating", "d.penalties=[r1:gamma=10]"),
    ("d.betas=[0.0,0.99]", "g.betas=[0.0,0.99]", "lr_scale=0.5"),
    ("train.augment=diffaugment",),
)
HEALABLE = ("d.", "g.", "loss", "train.augment", "train.n_critic")  # the game; not the networks or the data
NOT_HEALABLE = ("d.optimizer", "g.optimizer")  # an optimiser's state would not carry over to another kind


@dataclass(frozen=True)
class Remedy:
    """One rung: config overrides and a learning-rate factor."""

    overrides: tuple[str, ...] = ()
    lr_factor: float = 1.0

    def __str__(self) -> str:
        return ", ".join(self.overrides + ((f"learning rates x{self.lr_factor:g}",) if self.lr_factor != 1 else ()))


def parse_rung(rung: list[str] | tuple[str, ...], where: str) -> Remedy:
    """A ladder entry as a Remedy; ConfigError naming ``where`` for a key healing cannot change."""
    overrides, factor = [], 1.0
    for assignment in rung:
        key, eq, value = str(assignment).partition("=")
        key = key.strip()
        if not eq:
            raise ConfigError(f"{where}: {assignment!r} is not key=value")
        if key == "lr_scale":
            try:
                factor *= float(value)
            except ValueError:
                raise ConfigError(f"{where}: lr_scale must be a number (got {value!r})") from None
            if not 0 < factor <= 1:
                raise ConfigError(f"{where}: lr_scale must be in (0, 1] (got {value})")
        elif key in NOT_HEALABLE or not any(key == p or key.startswith(p) for p in HEALABLE):
            raise ConfigError(f"{where}: healing cannot change {key} (it may change the loss, train.augment, "
                              f"train.n_critic and d.*/g.* but the optimiser kind; the networks, data and seed "
                              f"stay those of the run)")
        else:
            overrides.append(f"{key}={value}")
    if not overrides and factor == 1:
        raise ConfigError(f"{where}: an empty remedy")
    return Remedy(tuple(overrides), factor)


def apply_remedy(config: dict[str, Any], remedy: Remedy) -> dict[str, Any]:
    """A copy of a config (nested dicts) with the remedy's overrides applied."""
    out = copy.deepcopy(config)
    for assignment in remedy.overrides:
        apply_override(out, assignment)
    return out


def without_changed_penalty_states(state: dict[str, Any], before: tuple[Any, ...],
                                   after: tuple[Any, ...]) -> dict[str, Any]:
    """The state to load into players a remedy rebuilt: a player whose penalties changed
    starts them afresh (the saved states belong to the ones it had)."""
    saved = dict(state.get("penalty_states") or {})
    for old, new in zip(before, after):
        if [p.name for p in old.penalties] != [p.name for p in new.penalties]:
            saved.pop(new.tag, None)
    return {**state, "penalty_states": saved}


def legacy_ladder(t: TrainConfig) -> list[Remedy]:
    """``on_nan=rollback``: max_rollbacks times the learning rates x rollback_lr_factor."""
    return [Remedy((), t.rollback_lr_factor)] * t.max_rollbacks


@dataclass
class Snapshot:
    """The newest state taken while the run was healthy (on_failure=heal)."""

    step: int
    state: dict[str, Any]


class Recovery:
    """Which failures are recovered from, the state each goes back to, and the remedies."""

    def __init__(self, t: TrainConfig, ladder: list[Remedy]) -> None:
        self.heals = t.on_failure == "heal"
        self.on_divergence = self.heals or t.on_nan == "rollback"
        self.every = t.heal_every
        self.ladder = ladder
        self.configured = list(ladder)  # the ladder these settings make: what a changed one continues on
        # Every setting the ladder is made from: a resume with another one builds a new ladder.
        self.spec = {"on_failure": t.on_failure, "heal_ladder": t.heal_ladder, "on_nan": t.on_nan,
                     "max_rollbacks": t.max_rollbacks, "rollback_lr_factor": t.rollback_lr_factor}
        self.restored = False  # whether the ladder is the one a checkpoint saved
        self.snapshot: Snapshot | None = None

    # The ladder a run started with is part of its state: a healed run's config already holds its
    # first remedies, and the ladder made from it again would leave them out (they change nothing
    # there) and shift every later rung. A resume keeps it; one with other recovery settings keeps
    # the rungs already applied (``applied``: the run's rollbacks) and continues on the new ladder.
    def state_dict(self, applied: int) -> dict[str, Any]:
        return {"spec": self.spec, "applied": applied,
                "ladder": [{"overrides": list(r.overrides), "lr_factor": r.lr_factor} for r in self.ladder]}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:
            return
        saved = [Remedy(tuple(r["overrides"]), float(r["lr_factor"])) for r in state["ladder"]]
        if state.get("spec") == self.spec:
            self.ladder, self.restored = saved, True
        else:  # from the configured ladder, not the current one: loading twice (a resume, then a
            # rollback to a state saved before it) must not put the applied rungs in front twice
            self.ladder = saved[:int(state.get("applied", 0))] + self.configured

    def snapshot_due(self, step: int) -> bool:
        return self.heals and (self.snapshot is None or step % self.every == 0)

    def take(self, step: int, state: dict[str, Any]) -> None:
        self.snapshot = Snapshot(step, copy.deepcopy(state))

    def state_to_load(self, ctx: ProcessContext, last_checkpoint: Path | None) -> tuple[str, dict[str, Any]] | None:
        """(what it is, the state) to go back to; None when there is none. A snapshot stays
        kept: a second failure before the next one goes back to it again, with the next rung."""
        if self.heals:
            return None if self.snapshot is None else ("its newest healthy state", copy.deepcopy(self.snapshot.state))
        if last_checkpoint is None:
            return None
        # Rank 0 reads the file; every rank continues from the same state.
        return last_checkpoint.name, ctx.broadcast_object(load_checkpoint(last_checkpoint) if ctx.is_main else None)

    # The snapshot in a checkpoint: none when it is the checkpoint's own state (the usual case,
    # heal_every dividing checkpoint_every), so checkpoints grow only when they fall between.
    def checkpoint_entry(self, step: int) -> dict[str, Any] | None:
        if self.snapshot is None:
            return None
        return {"step": self.snapshot.step, "state": None if self.snapshot.step == step else self.snapshot.state}

    def load_checkpoint_entry(self, entry: dict[str, Any] | None, own_state: dict[str, Any]) -> None:
        if entry is not None:
            self.take(entry["step"], own_state if entry["state"] is None else entry["state"])


def announce(ctx: ProcessContext, why: str, source: str, remedy: Remedy, count: int, rungs: int) -> None:
    """Say on stderr what was done (rank 0)."""
    if ctx.is_main:
        print(f"steadygan: {why}; rolled back to {source} with {remedy} (remedy {count} of {rungs})", file=sys.stderr)


HISTORY = "config-history.jsonl"  # in the run directory: one line per remedy applied


def record_remedy(run_dir: Path, count: int, step: int, failed_at: int, why: str, remedy: Remedy) -> None:
    """Append the remedy to the run's config history (config.yaml holds the config it made)."""
    line = {"remedy": count, "step": step, "failed_at": failed_at, "why": why, "overrides": list(remedy.overrides),
            "lr_factor": remedy.lr_factor, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with open(Path(run_dir) / HISTORY, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The remedies a run went through, in order (none: an empty list)."""
    path = Path(run_dir) / HISTORY
    if not path.exists():
        return []
    rows = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(text))
        except ValueError:
            continue  # a line cut short by a kill
    return [r for r in rows if isinstance(r, dict) and "remedy" in r]


def truncate_history(run_dir: Path, remedies: int) -> None:
    """A resumed run keeps the remedies its checkpoint had gone through; later ones are redone."""
    rows = read_history(run_dir)
    if len(rows) != remedies and (Path(run_dir) / HISTORY).exists():
        kept = "".join(json.dumps(r) + "\n" for r in rows if r["remedy"] <= remedies)
        atomic_write_text(Path(run_dir) / HISTORY, kept)
