"""A lab folder's plan is fixed: a command run again on its folder resumes, it never rewrites.

``steadygan compare -o LAB`` (and any later command that keeps many runs in one folder) writes
what it was asked into a plan file. Run again with the same arguments, it resumes; with other
arguments it is refused with one line that names what differs, because a report that counted
runs of one plan as runs of another would be wrong without a word. Two changes can be asked
for explicitly (``--extend``): entries added to the plan's lists (new variants, new seeds), and
a larger budget (every finished run then continues to it). Nothing else changes a plan, and a
smaller budget never does: runs that trained longer would count as finished at the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class PlanKeys:
    """How a plan's keys may change: never (``fixed``), by added entries (``lists``), upward (``budgets``)."""

    fixed: tuple[str, ...]
    lists: tuple[str, ...]
    budgets: tuple[str, ...]


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "(none)"
    return "none" if value is None else str(value)


def _budget_grows(old: Any, new: Any) -> bool:
    """A budget that lets every finished run go on: more steps or seconds (None: unlimited)."""
    return new is None or (old is not None and new > old)


def plan_changes(old: dict[str, Any], new: dict[str, Any], keys: PlanKeys) -> tuple[list[str], list[str]]:
    """The differences of ``new`` from ``old``, split into those ``--extend`` may make (entries
    added, a larger budget) and those nothing may make; each as ``key: old -> new``."""
    allowed, refused = [], []
    for key in keys.fixed:
        if old.get(key) != new.get(key):
            refused.append(f"{key}: {_shown(old.get(key))} -> {_shown(new.get(key))}")
    for key in keys.lists:
        before, after = list(old.get(key) or []), list(new.get(key) or [])
        if before == after:
            continue
        dropped = [v for v in before if v not in after]
        added = [v for v in after if v not in before]
        if dropped:
            refused.append(f"{key}: {_shown(dropped)} would be dropped")
        if added:
            allowed.append(f"{key}: {_shown(added)} added")
    for key in keys.budgets:
        if old.get(key) != new.get(key):
            change = f"{key}: {_shown(old.get(key))} -> {_shown(new.get(key))}"
            (allowed if _budget_grows(old.get(key), new.get(key)) else refused).append(change)
    return allowed, refused


def check_plan(folder: Any, old: dict[str, Any] | None, new: dict[str, Any], keys: PlanKeys, extend: bool,
               command: str) -> None:
    """Refuse (ConfigError, one line) a plan that may not replace ``old`` in ``folder``; a
    folder without a plan, or one planned with the same arguments, is fine."""
    if old is None:
        return
    allowed, refused = plan_changes(old, new, keys)
    if refused:
        raise ConfigError(f"{folder} holds a lab planned with other arguments ({'; '.join(refused)}); run "
                          f"`{command}` with its arguments to resume it, or give another output folder")
    if allowed and not extend:
        raise ConfigError(f"{folder} holds a lab planned with other arguments ({'; '.join(allowed)}); pass "
                          "--extend to add them to its plan, or give another output folder")
