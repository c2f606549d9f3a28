"""A run's stateful parts as one named collection: what a checkpoint saves and a resume loads.

Each entry maps a checkpoint key to an object with ``state_dict()`` and
``load_state_dict(state)``; the small adapters below give that interface to the parts that
lack it or need a rule of their own (a network loaded with a one-line error naming the first
mismatched layer, the EMA that must exist when the run keeps one, the global RNGs, a
counter). ``load_state_dict(None)`` is how a part hears that an older checkpoint has no
entry for it: each adapter says what that means.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from torch import nn

from ..core.ema import Ema
from ..core.step import Player
from ..errors import ConfigError
from .checkpoint import capture_rng, load_matching, restore_rng

if TYPE_CHECKING:
    from .build import RunParts
    from .recovery import Recovery


class Stateful(Protocol):
    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> None: ...


class RunState:
    """Named parts, saved and loaded by one loop each (the checkpoint's keys are the names)."""

    def __init__(self, parts: dict[str, Stateful]) -> None:
        self.parts = parts

    def state_dict(self, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        return {key: part.state_dict() for key, part in self.parts.items() if key not in skip}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, part in self.parts.items():
            part.load_state_dict(state.get(key))


class NetworkState:
    """A network's weights; loading names the first layer that does not match."""

    def __init__(self, net: nn.Module, what: str) -> None:
        self.net, self.what = net, what

    def state_dict(self) -> dict[str, Any]:
        return self.net.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        load_matching(self.net, state, self.what)


class EmaState:
    """The EMA generator's weights (None when the run keeps none)."""

    def __init__(self, ema: Ema | None) -> None:
        self.ema = ema

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.ema is None else self.ema.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.ema is None:
            return
        if state is None:
            raise ConfigError("this checkpoint has no EMA generator; resume with train.ema=0")
        self.ema.load_state_dict(state)


class OptionalState:
    """A part that may be absent here (None) or from an older checkpoint (then it stays as built)."""

    def __init__(self, part: Stateful | None) -> None:
        self.part = part

    def state_dict(self) -> Any:
        return None if self.part is None else self.part.state_dict()

    def load_state_dict(self, state: Any) -> None:
        if self.part is not None and state is not None:
            self.part.load_state_dict(state)


class LadderState:
    """The recovery's ladder with the number of its rungs the run has applied (its rollbacks)."""

    def __init__(self, counters: Any) -> None:
        self.counters = counters

    def state_dict(self) -> dict[str, Any]:
        return self.counters.recovery.state_dict(self.counters.rollbacks)

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        self.counters.recovery.load_state_dict(state)


class RngState:
    """Every global RNG the loop draws from (torch, CUDA, numpy, Python)."""

    def state_dict(self) -> dict[str, Any]:
        return capture_rng()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        restore_rng(state)


class PenaltyStates:
    """The penalties' own state (LeCam's moving averages), per player tag."""

    def __init__(self, players: tuple[Player, ...]) -> None:
        self.players = players

    def state_dict(self) -> dict[str, list[Any]]:
        return {p.tag: [pen.state_dict() for pen in p.penalties] for p in self.players}

    def load_state_dict(self, state: dict[str, list[Any]] | None) -> None:
        for player in self.players:
            for penalty, saved in zip(player.penalties, (state or {}).get(player.tag, [])):
                penalty.load_state_dict(saved)


class Counter:
    """One number the loop keeps as an attribute (step, elapsed, ...), with its value in
    checkpoints that predate it."""

    def __init__(self, owner: Any, attr: str, default: Any = None) -> None:
        self.owner, self.attr, self.default = owner, attr, default

    def state_dict(self) -> Any:
        return getattr(self.owner, self.attr)

    def load_state_dict(self, state: Any) -> None:
        if state is None and self.default is None:
            raise KeyError(self.attr)  # a counter every checkpoint has: a damaged one
        setattr(self.owner, self.attr, self.default if state is None else state)


class SnapshotEntry:
    """The healing snapshot a checkpoint carries (``Recovery.checkpoint_entry``). Loading it
    needs the whole checkpoint (the snapshot may be the checkpoint's own state): the trainer
    does that after the other parts, so this part's own load leaves it alone."""

    KEY = "heal_snapshot"

    def __init__(self, recovery: Recovery, counters: Any) -> None:
        self.recovery, self.counters = recovery, counters

    def state_dict(self) -> dict[str, Any] | None:
        return self.recovery.checkpoint_entry(self.counters.step)

    def load_state_dict(self, state: Any) -> None:
        pass


def checkpoint_parts(counters: Any, parts: RunParts) -> dict[str, Stateful]:
    """Every part of a run a checkpoint holds, under the key it is stored as. ``counters``
    keeps step, d_updates, elapsed, rollbacks and lr_scale as attributes, and the recovery (the trainer)."""
    d, g = parts.d, parts.g
    named: dict[str, Stateful] = {
        "step": Counter(counters, "step"), "d_updates": Counter(counters, "d_updates"),
        "elapsed": Counter(counters, "elapsed"),
        "generator": NetworkState(parts.pair.generator, "the checkpoint's generator"),
        "discriminator": NetworkState(parts.pair.discriminator, "the checkpoint's discriminator"),
        "ema": EmaState(parts.ema), "opt_g": g.optimizer, "opt_d": d.optimizer, "sampler": parts.sampler,
        "rng": RngState(), "eval": parts.periodic_eval, "rollbacks": Counter(counters, "rollbacks", 0),
        "lr_scale": Counter(counters, "lr_scale", 1.0), "augment": OptionalState(parts.augment),
        "fake_history": OptionalState(parts.history),
        "penalty_states": PenaltyStates((d, g)), SnapshotEntry.KEY: SnapshotEntry(counters.recovery, counters),
        "recovery_ladder": LadderState(counters),
    }
    for player in (d, g):
        if player.scaler is not None:  # fp16: the scale it had reached
            named[f"scaler_{player.tag.lower()}"] = player.scaler
    return named
