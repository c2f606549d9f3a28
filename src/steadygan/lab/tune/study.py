"""The search rung of ``steadygan tune``: an Optuna study whose trials are ordinary runs.

Optuna (Akiba et al. 2019) keeps the study, samples the cells (TPE, or the whole grid, or at
random) and decides which trials to stop early (successive halving, Jamieson & Talwalkar
2016, or Hyperband, Li et al. 2018) from the main metric each periodic evaluation reports. A
trial whose health status turns failing stops at once (train.on_failure=stop), and one that
reaches its budget but fails the lab report's rule there is pruned as well: its last
evaluation is not a value the sampler should learn from or the finals pick. Each trial
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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...errors import ConfigError, Interrupted
from ...training.guards import RunLocked
from ..compare import RunJob, is_done, read_marker, run_one
from ..report.aggregate import Run, collapse_reason, divergence_reason, load_run, read_stats
from .space import Cell, Space

PASSWORD_ENV = "STEADYGAN_TUNE_DB_PASSWORD"
SEARCH = "search"  # the rung a trial belongs to (user attribute "rung")


def mask(text: str) -> str:
    """``text`` (a URL, an error message) with any database password replaced by ***: the one in
    a URL's user:password@ part, and the environment's wherever it appears."""
    text = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)
    password = os.environ.get(PASSWORD_ENV)
    if password:
        from urllib.parse import quote

        for form in {password, quote(password, safe="")}:
            text = text.replace(form, "***")
    return text


def display_url(url: str) -> str:
    """A database URL as it may be shown and written: its password, in the user part or the
    query, replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not parsed: show its scheme only
        return (url.split(":", 1)[0] + "://...") if "://" in url else "(not a URL)"
    query = {k: v for k, v in parsed.query.items() if k != "password"}
    shown = parsed.set(query=query).render_as_string(hide_password=True)
    return shown + (("&" if query else "?") + "password=***" if "password" in parsed.query else "")


def storage_url(out_dir: Path, url: str | None) -> str:
    """The study's storage: a SQLite file in the tune folder, or ``url`` with the password from
    the environment. A URL that carries a password itself (user:password@ or ?password=) is
    refused: URLs are printed and written to the tune folder."""
    if url is None:
        return f"sqlite:///{(Path(out_dir) / 'study.db').resolve()}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # the URL is not echoed: it may hold a password
        scheme = url.split(":", 1)[0] if "://" in url else "?"
        raise ConfigError(f"--storage: not a database URL (scheme {scheme!r}; e.g. postgresql://user@host/db)") \
            from None
    if parsed.password is not None or "password" in parsed.query:
        # Not echoed, not even masked: where a password ends in a malformed URL is a guess.
        raise ConfigError(f"--storage: the URL holds a password; give it in ${PASSWORD_ENV} instead (a URL is "
                          f"printed and written to the tune folder), e.g. {parsed.drivername}://user@host/db")
    if parsed.drivername == "postgresql":  # the driver steadygan's postgres extra installs
        parsed = parsed.set(drivername="postgresql+psycopg")
    password = os.environ.get(PASSWORD_ENV)
    if password:
        parsed = parsed.set(password=password)
    return parsed.render_as_string(hide_password=False)


def _lost_schema_race(exc: Exception) -> bool:
    """Whether ``exc`` is what a worker gets when another creates the study's tables at the same
    moment: a duplicate row (IntegrityError), "table ... already exists", or SQLite's "database
    is locked" while the other's transaction holds the file."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    if isinstance(exc, IntegrityError):
        return True
    # The driver's own message, not SQLAlchemy's, which also quotes the statement.
    message = str(getattr(exc, "orig", exc))
    return isinstance(exc, (OperationalError, ProgrammingError)) and (
        "already exists" in message or "database is locked" in message)


def _cannot_open(url: str, exc: Exception) -> ConfigError:
    """A database error in one line, the password nowhere."""
    return ConfigError(f"cannot open the study at {display_url(url)}: {mask(str(exc)).splitlines()[0]}")


@dataclass(frozen=True)
class SearchSettings:
    metric: str                 # e.g. Metric/fid
    higher: bool                # whether higher is better
    trials: int                 # finished search trials the study stops at
    sampler: str                # tpe | grid | random
    pruner: str                 # sha | hyperband | none
    seed: int = 0


def tpe_startup_trials(trials: int) -> int:
    """Random trials before TPE models the results: Optuna's default, 10, would leave a search
    of a third of a 19-cell grid (6 trials) entirely random; a third of the trials, at least 2
    (TPE needs a good and a bad group) and at most Optuna's 10."""
    return max(2, min(10, trials // 3))


def open_study(url: str, name: str, settings: SearchSettings, grid: list[str] | None = None,
               heartbeat: int = 30) -> Any:
    """The study at ``url`` (created or loaded); ``grid``: the cells' labels, for the grid sampler."""
    import warnings

    import optuna

    # A failed trial is logged by Optuna with its traceback; tune says what happened in one line.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Heartbeats, grouped TPE: marked experimental by Optuna, used here on purpose.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for attempt in range(4):
        try:
            storage = optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat, grace_period=4 * heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
            break
        except Exception as exc:  # noqa: BLE001 - a database error: one line, the URL masked
            if not _lost_schema_race(exc):
                raise _cannot_open(url, exc) from None
            if attempt == 3:
                raise ConfigError(f"cannot open the study at {display_url(url)}: its tables are still incomplete "
                                  "(another worker creating them, or one stopped halfway); run tune again, or "
                                  "give a new database") from None
            time.sleep(1.0 + attempt)  # the other worker is creating the schema: load it once it is there
    samplers = {"tpe": lambda: optuna.samplers.TPESampler(seed=settings.seed, multivariate=True, group=True,
                                                          n_startup_trials=tpe_startup_trials(settings.trials)),
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
        raise _cannot_open(url, exc) from None


class Objective:
    """One search trial: draw a cell, train (or reuse) its seed-0 run, report the main metric
    at each evaluation, let the pruner stop it; the final metric is the trial's value."""

    def __init__(self, space: Space, settings: SearchSettings, job_for: Callable[[Cell, int], RunJob],
                 threads: int | None = None) -> None:
        self.space, self.settings, self.job_for, self.threads = space, settings, job_for, threads
        self.labels = [c.label for c in space.cells()] if space is not None else []

    def __call__(self, trial: Any) -> float:
        if self.settings.sampler == "grid":  # one parameter, the cell: a grid the sampler can walk
            cell = {c.label: c for c in self.space.cells()}[trial.suggest_categorical("cell", self.labels)]
        else:
                cell = self.space.suggest(trial)
        try:
            return self._run(trial, cell)
        except KeyboardInterrupt:  # given again when tune runs again: its run resumes from its checkpoint
            trial.study.enqueue_trial(trial.params, user_attrs={"rung": SEARCH})
            raise

    def _run(self, trial: Any, cell: Cell) -> float:
        import optuna

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
            marker = train_or_wait(job, self.threads, self._observer(trial, report))
            if marker.get("action") == "interrupted":
                raise Interrupted(marker.get("signal") or signal.SIGTERM)
            for step, value in self._earlier_values(job):
                report(step, value)
        stopped = "diverged" if marker["status"] == "diverged" else marker.get("stopped")
        trial.set_user_attr("stopped", stopped)
        trial.set_user_attr("step", marker.get("step"))
        print(f"trial {trial.number} {cell.label}: {stopped} at step {marker.get('step')}", file=sys.stderr, flush=True)
        if stopped in ("diverged", "failing", "pruned"):
            raise optuna.TrialPruned(f"{stopped} at step {marker.get('step')}")
        # The health status is read at each probe; the report's rule on the final evaluation
        # can still fail a run that was never stopped (a last FID 10x its best, a class lost).
        reason = failure(load_run(job.run_dir, cell.label, 0), self.settings.metric, self.settings.higher)
        if reason:
            trial.set_user_attr("stopped", "failed")
            trial.set_user_attr("failure", reason)
            print(f"trial {trial.number} {cell.label}: failed the report's rule: {reason}", file=sys.stderr, flush=True)
            raise optuna.TrialPruned(f"failed: {reason}")
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


def failure(run: Run, metric: str, higher: bool) -> str | None:
    """Why a finished run failed (the lab report's rule, or a failing health status), or None."""
    if (run.marker or {}).get("stopped") == "failing":
        return "its health status failed"
    return divergence_reason(run, metric, higher) or collapse_reason(run)


def train_or_wait(job: RunJob, threads: int | None, observer: Callable[[int, dict[str, float]], str | None],
                  poll_s: float = 5.0) -> dict[str, Any]:
    """Train (or resume) the run; while another worker holds it, wait: once it is free, it is
    either done (its marker is this trial's result too) or was left unfinished (train it here)."""
    while True:
        try:
            return run_one(job, threads, observer=observer)
        except RunLocked:
            time.sleep(poll_s)


def finished_search_trials(study: Any) -> list[Any]:
    """Search trials that ended (completed or pruned), in the order they ended."""
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    trials = [t for t in study.get_trials(deepcopy=False, states=done) if t.user_attrs.get("rung") == SEARCH]
    return sorted(trials, key=lambda t: (t.datetime_complete, t.number))


def cells_tried(study: Any) -> list[str]:
    """The labels of the cells whose search trial ended, each once, in the order they ended (a
    cell drawn again reuses its run, so it counts once)."""
    return list(dict.fromkeys(t.user_attrs["cell"] for t in finished_search_trials(study)))


def run_search(study: Any, objective: Objective, cells: int, poll_s: float = 5.0) -> None:
    """Run trials until ``cells`` distinct cells were tried, counted over every worker, and no
    worker's search trial is still running (the finals must see them all). A trial whose worker
    died (no heartbeat) is given again."""
    import optuna

    state = optuna.trial.TrialState

    def search(states: tuple) -> list[Any]:
        return [t for t in study.get_trials(deepcopy=False, states=states) if t.user_attrs.get("rung") == SEARCH
                or t.state == state.WAITING]

    def enough(study: Any, trial: Any) -> None:
        # A sampler that keeps drawing cells already tried (each reuses its run) ends too.
        if len(cells_tried(study)) >= cells or len(study.trials) >= 20 * cells:
            study.stop()

    while True:
        optuna.storages.fail_stale_trials(study)
        if (len(cells_tried(study)) < cells and len(study.trials) < 20 * cells) or search((state.WAITING,)):
            study.optimize(objective, callbacks=[enough], catch=())
        elif search((state.RUNNING,)):
            time.sleep(poll_s)
        else:
            return
