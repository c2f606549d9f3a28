"""The search rung of ``steadygan tune``: an Optuna study whose trials are ordinary runs.

Optuna (Akiba et al. 2019) keeps the study, samples the cells (TPE, or the whole grid, or at
random) and decides which trials to stop early (successive halving, Jamieson & Talwalkar
2016, or Hyperband, Li et al. 2018) from the main metric each periodic evaluation reports. A
trial whose health status turns failing stops at once (train.on_failure=stop). Each trial
trains the run directory of its cell at seed 0, ``OUT/runs/<cell>-s0``: a cell drawn twice
costs one run, and an interrupted trial resumes its run from the checkpoint when the study
gives the trial again.

Storage is ``sqlite:///OUT/study.db`` unless a database URL is given (several machines):
several ``tune`` processes on one storage share the study, with heartbeats so that a trial
whose process died is given again. A URL's password comes from ``STEADYGAN_TUNE_DB_PASSWORD``
and never appears in what is written or printed.
"""

from __future__ import annotations

import math
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...errors import ConfigError, Interrupted
from ...training.guards import RunLocked
from ..compare import RunJob, is_done, read_marker, run_one
from ..report.aggregate import read_stats
from .space import Cell, Space

PASSWORD_ENV = "STEADYGAN_TUNE_DB_PASSWORD"
SEARCH = "search"  # the rung a trial belongs to (user attribute "rung")


def mask(url: str) -> str:
    """A database URL with any password replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def storage_url(out_dir: Path, url: str | None) -> str:
    """The study's storage: a SQLite file in the tune folder, or ``url`` with the password from
    the environment. A URL that carries a password itself is refused (it would end up in logs)."""
    if url is None:
        return f"sqlite:///{(Path(out_dir) / 'study.db').resolve()}"
    if mask(url) != url:
        raise ConfigError(f"--storage {mask(url)}: give the password in ${PASSWORD_ENV}, not in the URL "
                          "(a URL is printed and written to the tune folder)")
    password = os.environ.get(PASSWORD_ENV)
    if password:
        from urllib.parse import quote

        url = re.sub(r"://([^:/@]+)@", lambda m: f"://{m.group(1)}:{quote(password, safe='')}@", url, count=1)
    return url


@dataclass(frozen=True)
class SearchSettings:
    metric: str                 # e.g. Metric/fid
    higher: bool                # whether higher is better
    trials: int                 # finished search trials the study stops at
    sampler: str                # tpe | grid | random
    pruner: str                 # sha | hyperband | none
    seed: int = 0


def open_study(url: str, name: str, settings: SearchSettings, grid: list[str] | None = None,
               heartbeat: int = 30) -> Any:
    """The study at ``url`` (created or loaded); ``grid``: the cells' labels, for the grid sampler."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats, grouped TPE: marked experimental by Optuna, used here on purpose.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat, grace_period=4 * heartbeat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
    except Exception as exc:  # noqa: BLE001 - a database error: one line, the URL masked
        raise ConfigError(f"cannot open the study at {mask(url)}: {mask(str(exc)).splitlines()[0]}") from None
    samplers = {"tpe": lambda: optuna.samplers.TPESampler(seed=settings.seed, multivariate=True, group=True),
                # Each cell once, also with several workers (Optuna's grid sampler skips running points).
                "grid": lambda: optuna.samplers.GridSampler({"cell": list(grid or [])}, seed=settings.seed),
                "random": lambda: optuna.samplers.RandomSampler(seed=settings.seed)}
    pruners = {"sha": lambda: optuna.pruners.SuccessiveHalvingPruner(reduction_factor=3),
               "hyperband": lambda: optuna.pruners.HyperbandPruner(reduction_factor=3),
               "none": lambda: optuna.pruners.NopPruner()}
    try:
        return optuna.create_study(storage=storage, study_name=name, sampler=samplers[settings.sampler](),
                                   pruner=pruners[settings.pruner](), load_if_exists=True,
                                   direction="maximize" if settings.higher else "minimize")
    except Exception as exc:  # noqa: BLE001 - a database error: one line, the URL masked
        raise ConfigError(f"cannot open the study at {mask(url)}: {mask(str(exc)).splitlines()[0]}") from None


class Objective:
    """One search trial: draw a cell, train (or reuse) its seed-0 run, report the main metric
    at each evaluation, let the pruner stop it; the final metric is the trial's value."""

    def __init__(self, space: Space, settings: SearchSettings, job_for: Callable[[Cell, int], RunJob],
                 threads: int | None = None) -> None:
        self.space, self.settings, self.job_for, self.threads = space, settings, job_for, threads
        self.labels = [c.label for c in space.cells()] if space is not None else []

    def __call__(self, trial: Any) -> float:
        import optuna

        if self.settings.sampler == "grid":  # one parameter, the cell: a grid the sampler can walk
            cell = {c.label: c for c in self.space.cells()}[trial.suggest_categorical("cell", self.labels)]
        else:
            cell = self.space.suggest(trial)
        job = self.job_for(cell, 0)
        trial.set_user_attr("rung", SEARCH)
        trial.set_user_attr("cell", cell.label)
        trial.set_user_attr("run_dir", str(job.run_dir))
        reported: set[int] = set()

        def report(step: int, value: float) -> None:
            if step not in reported:
                reported.add(step)
                trial.report(value, step)

        for step, value in self._earlier_values(job):  # a resumed or finished run: its evaluations so far
            report(step, value)
        marker = read_marker(job.run_dir)
        if not is_done(marker, job.cfg):
            try:
                marker = run_one(job, self.threads, observer=self._observer(trial, report))
            except RunLocked:  # another worker trains this cell now: its trial will say how it went
                trial.set_user_attr("stopped", "duplicate")
                raise optuna.TrialPruned() from None
            if marker.get("action") == "interrupted":  # given again when tune runs again: its run resumes
                trial.study.enqueue_trial(trial.params, user_attrs={"rung": SEARCH})
                raise Interrupted(marker.get("signal") or signal.SIGTERM)
            for step, value in self._earlier_values(job):
                report(step, value)
        stopped = "diverged" if marker["status"] == "diverged" else marker.get("stopped")
        trial.set_user_attr("stopped", stopped)
        trial.set_user_attr("step", marker.get("step"))
        print(f"trial {trial.number} {cell.label}: {stopped} at step {marker.get('step')}", file=sys.stderr, flush=True)
        if stopped in ("diverged", "failing", "pruned"):
            raise optuna.TrialPruned(f"{stopped} at step {marker.get('step')}")
        values = self._earlier_values(job)
        if not values:
            raise ConfigError(f"{job.run_dir}: no {self.settings.metric} was recorded; set train.eval_every")
        return values[-1][1]

    def _earlier_values(self, job: RunJob) -> list[tuple[int, float]]:
        _, evals, _ = read_stats(job.run_dir / "stats.jsonl")
        metric = self.settings.metric
        return [(r["step"], float(r[metric])) for r in evals
                if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]

    def _observer(self, trial: Any, report: Callable[[int, float], None]) -> Callable[[int, dict[str, float]],
                                                                                      str | None]:
        def observe(step: int, row: dict[str, float]) -> str | None:
            value = row.get(self.settings.metric)
            if value is None or not math.isfinite(value):
                return None
            report(step, float(value))
            return "pruned" if trial.should_prune() else None

        return observe


def finished_search_trials(study: Any) -> list[Any]:
    """Search trials that ended (completed or pruned), in the order they ended; a trial that
    found its cell's run held by another worker is left out (that worker's trial counts)."""
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    trials = [t for t in study.get_trials(deepcopy=False, states=done)
              if t.user_attrs.get("rung") == SEARCH and t.user_attrs.get("stopped") != "duplicate"]
    return sorted(trials, key=lambda t: (t.datetime_complete, t.number))


def cells_tried(study: Any) -> list[str]:
    """The labels of the cells whose search trial ended, each once, in the order they ended (a
    cell drawn again reuses its run, so it counts once)."""
    return list(dict.fromkeys(t.user_attrs["cell"] for t in finished_search_trials(study)))


def run_search(study: Any, objective: Objective, cells: int) -> None:
    """Run trials until ``cells`` distinct cells were tried (counted over every worker)."""

    def enough(study: Any, trial: Any) -> None:
        if len(cells_tried(study)) >= cells:
            study.stop()

    if len(cells_tried(study)) >= cells:
        return
    try:
        study.optimize(objective, callbacks=[enough], catch=())
    except KeyboardInterrupt:
        print("steadygan tune: interrupted; run the same command again to resume", file=sys.stderr)
        raise
