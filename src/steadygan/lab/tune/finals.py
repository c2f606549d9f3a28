"""The last rung of ``steadygan tune``: the best cells of the search, each on several seeds at
the full budget, ranked so that a cell that failed on any seed comes after every cell that
did not (early metrics mislead: a method can look best at step 500 and collapse by 2,000).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from ...errors import Interrupted
from ...training.guards import RunLocked
from ..compare import RunJob, describe, is_done, read_marker, run_one
from ..report.aggregate import Run, final_value
from .space import Cell, Space
from .study import cells_tried, failure, finished_search_trials


def finalists(study: Any, space: Space, trials: int, count: int, higher: bool) -> list[Cell]:
    """The ``count`` best of the first ``trials`` cells tried that reached the budget (in the
    order they were tried: every worker computes the same list)."""
    import optuna

    first = set(cells_tried(study)[:trials])
    value: dict[str, float] = {}
    for t in finished_search_trials(study):
        label = t.user_attrs["cell"]
        if label in first and t.state == optuna.trial.TrialState.COMPLETE and t.value is not None:
            value.setdefault(label, t.value)
    by_label = {c.label: c for c in space.cells()}
    ranked = sorted(value, key=lambda label: -value[label] if higher else value[label])
    return [by_label[label] for label in ranked[:count]]


def run_finals(jobs: list[RunJob], threads: int | None, log: Callable[[str], None], poll_s: float = 10.0) -> None:
    """Train every job not yet done; one that another worker holds is waited for."""
    while True:
        waiting = 0
        for job in jobs:
            if is_done(read_marker(job.run_dir), job.cfg):
                continue
            try:
                outcome = run_one(job, threads)
            except RunLocked:
                waiting += 1
                continue
            log(f"final {job.name}: {describe(outcome)}")
            if outcome["action"] == "interrupted":
                raise Interrupted(outcome.get("signal") or 15)
        if not waiting:
            return
        time.sleep(poll_s)


@dataclass
class Standing:
    cell: Cell
    seeds: int
    failed: int
    mean: float | None
    std: float | None
    reasons: list[str]


def standings(cells: list[Cell], runs_of: Callable[[Cell], list[Run]], metric: str, higher: bool) -> list[Standing]:
    """Each finalist's failures and final metric over its seeds, best first: no failure before
    any failure, then by the mean metric."""
    out = []
    for cell in cells:
        runs = runs_of(cell)
        reasons = [r for r in (failure(run, metric, higher) for run in runs) if r]
        finals = [v for v in (final_value(run, metric) for run in runs) if v is not None and math.isfinite(v)]
        out.append(Standing(cell, len(runs), len(reasons), statistics.fmean(finals) if finals else None,
                            statistics.stdev(finals) if len(finals) > 1 else None, reasons))

    def key(s: Standing) -> tuple[bool, float]:
        worst = -math.inf if higher else math.inf
        mean = s.mean if s.mean is not None else worst
        return (s.failed > 0, -mean if higher else mean)

    return sorted(out, key=key)


def winner_warning(table: list[Standing]) -> str | None:
    """A sentence when even the best finalist failed on some seed (every finalist did, then)."""
    best = table[0]
    if not best.failed:
        return None
    return (f"every finalist failed on some seed; the winner, {best.cell.label}, failed on {best.failed} of "
            f"{best.seeds} ({'; '.join(best.reasons)}): read the report before training with it")
