"""``steadygan tune``: find the stabiliser and its strength for a config's own data, on a budget.

Two rungs, one folder (``OUT``)::

    OUT/tune.yaml          what was asked (fixed: the same command resumes, another is refused)
    OUT/study.db           the Optuna study (SQLite; or a database given with --storage)
    OUT/runs/<cell>-s<seed>/   ordinary run directories: seed 0 of every cell tried, and the
                           finalists' other seeds
    OUT/best.yaml          the winner: `steadygan train -c OUT/best.yaml`
    OUT/report/            the report (every run's metric against steps, why each stopped,
                           the ranking)

1. **Search** (study.py): trials draw cells of the space, train them at seed 0 to the budget,
   and are stopped early by the pruner or a failing health status.
2. **Finals** (finals.py): the best few cells on several seeds at the full budget; a cell that
   failed on any seed ranks after every one that did not, then by the mean final metric.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...config import dump_config
from ...data import dataset_protocol
from ...errors import ConfigError
from ...files import atomic_write_text
from ...training.build import config_from_dict, load_config
from ..compare import RUNS, RunJob
from ..plan import PlanKeys, check_plan
from ..report import write_report
from ..report.aggregate import METRIC_DIRECTIONS, TUNE_PLAN_FILE, load_runs, parse_metric
from ..report.document import Document, fmt, fmt_pm
from ..variants import Variant, parse_variant
from .finals import Standing, finalists, run_finals, standings, winner_warning
from .space import Cell, Space, load_space
from .study import Objective, SearchSettings, display_url, open_study, run_search, storage_url

PLAN_FILE = TUNE_PLAN_FILE
BEST_FILE = "best.yaml"
PLAN_KEYS = PlanKeys(fixed=("base_config", "base_overrides", "space", "sampler", "pruner", "metric", "steps",
                            "time", "finalists", "seeds"), lists=(), budgets=("trials",))


@dataclass(frozen=True)
class TuneRequest:
    base_config: str | None
    base_overrides: tuple[str, ...]
    space: str                   # a named space or a YAML file
    steps: int | None
    time: float | None
    trials: int | None           # search trials; None: a third of the grid (at least 4)
    finalists: int = 3
    seeds: int = 3
    sampler: str = "tpe"         # tpe | grid | random
    pruner: str = "sha"          # sha | hyperband | none
    metric: str | None = None    # default: Metric/fid on images, Metric/modes on 2-D data
    storage: str | None = None   # a database URL (password in $STEADYGAN_TUNE_DB_PASSWORD)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Tune:
    """A tune folder: its plan, jobs and study."""

    def __init__(self, request: TuneRequest, out_dir: Path) -> None:
        self.request, self.out_dir = request, Path(out_dir)
        if request.sampler not in ("tpe", "grid", "random"):
            raise ConfigError(f"--sampler must be tpe, grid or random (got {request.sampler!r})")
        if request.pruner not in ("sha", "hyperband", "none"):
            raise ConfigError(f"--pruner must be sha, hyperband or none (got {request.pruner!r})")
        for name in ("finalists", "seeds"):
            if getattr(request, name) < 1:
                raise ConfigError(f"--{name} must be >= 1 (got {getattr(request, name)})")
        if request.steps is None and request.time is None:
            raise ConfigError("give a budget per trial: --steps N or --time SECONDS")
        self.storage = storage_url(self.out_dir, request.storage)  # checked before anything is written
        self.space: Space = load_space(request.space)
        self.base = load_config(request.base_config, list(request.base_overrides))
        points = dataset_protocol(self.base.data.name) == "mixture"
        metric = request.metric or ("Metric/modes" if points else "Metric/fid")
        self.metric, higher = parse_metric(metric) if ":" in metric else (parse_metric(metric)[0], None)
        self.higher = METRIC_DIRECTIONS[self.metric] if higher is None else higher
        self.dropped = self._check_cells(self.space.cells())
        cells = self.space.cells()
        if request.trials is not None and request.trials < 1:
            raise ConfigError(f"--trials must be >= 1 (got {request.trials})")
        # Trials count cells tried (a cell drawn again reuses its run): at most all of them.
        wanted = request.trials if request.trials is not None else max(4, -(-len(cells) // 3))
        self.trials = len(cells) if request.sampler == "grid" else min(wanted, len(cells))

    def _check_cells(self, cells: list[Cell]) -> list[str]:
        """Every cell's config is checked before anything trains. What does not apply to this
        config leaves the space with its one-line reason: a learning rate or beta1 that no cell
        can use (beta1 for SGD; with none left, the config's own is used), then a method with a
        cell that still fails (R1 under train.compile). Returns the reasons."""
        failing: dict[Cell, str] = {}

        def check(cell: Cell) -> None:
            try:
                self.job_for(cell, 0)
            except ConfigError as exc:
                failing[cell] = str(exc)

        for cell in cells:
            check(cell)
        reasons: list[str] = []
        dropped: dict[str, set[float]] = {"lr": set(), "beta1": set()}
        for axis, values in (("lr", self.space.lr), ("beta1", self.space.beta1)):
            for value in values:
                with_value = [c for c in cells if getattr(c, axis) == value]
                if all(c in failing for c in with_value):
                    dropped[axis].add(value)
                    reasons.append(f"{axis}={value:g}: {failing[with_value[0]]}")
        space = self.space.without(set(), dropped["lr"], dropped["beta1"])
        for cell in set(space.cells()) - set(cells):  # an axis left empty: the config's own value
            check(cell)
        specs = {c.spec: failing[c] for c in space.cells() if c in failing}
        reasons += list(dict.fromkeys(specs.values()))
        space = space.without(set(specs))
        if not space.cells():
            raise ConfigError(f"no cell of the space applies to this config; the first: {next(iter(failing.values()))}")
        self.space = space
        return reasons

    # --- jobs ------------------------------------------------------------------------------

    def job_for(self, cell: Cell, seed: int) -> RunJob:
        """The run of ``cell`` at ``seed``: the base config with the cell's overrides, the budget,
        periodic evaluation (a fifth of the budget, unless the config sets one) and
        train.on_failure=stop (a failing trial ends at once)."""
        r = self.request
        try:
            cfg = load_config(r.base_config, [*r.base_overrides, *self._overrides(cell)])
        except ConfigError as exc:
            raise ConfigError(f"cell {cell.label}: {exc}") from None
        data = cfg.to_dict()
        t = data["train"]
        t.update(seed=seed, name=f"{cell.slug}-s{seed}", out_dir=str(self.out_dir / RUNS), progress=False,
                 on_failure="stop")
        if r.steps is not None:
            t["steps"] = r.steps
        if r.time is not None:
            t["time"] = r.time
        if not t["eval_every"] and not t["eval_seconds"]:
            if r.steps is not None:
                t["eval_every"] = max(1, r.steps // 5)
            else:
                t["eval_seconds"] = r.time / 5
        variant = Variant(cell.spec, cell.label, tuple(parse_variant(cell.spec).overrides))
        return RunJob(variant, seed, self.out_dir / RUNS / f"{cell.slug}-s{seed}", config_from_dict(data))

    def _overrides(self, cell: Cell) -> list[str]:
        adam = (0.5, 0.999)  # core.optim.adam's default, what a config without betas trains with
        return cell.overrides((self.base.d.betas or adam)[1], (self.base.g.betas or adam)[1])

    # --- the plan ---------------------------------------------------------------------------

    def plan(self) -> dict[str, Any]:
        r = self.request
        return {"base_config": r.base_config, "base_overrides": list(r.base_overrides), "space": r.space,
                "space_cells": [c.label for c in self.space.cells()], "sampler": r.sampler, "pruner": r.pruner,
                "metric": self.metric, "steps": r.steps, "time": r.time, "trials": self.trials,
                "finalists": r.finalists, "seeds": list(range(r.seeds)),
                "storage": display_url(r.storage) if r.storage else "study.db (in this folder)"}

    def study_name(self) -> str:
        """The folder's name and a digest of what fixes the search: tunes with other settings in
        one database (several people, one server) never mix their trials, and the same tune's
        workers find one study wherever their folder is mounted."""
        plan = self.plan()
        fixed = {k: plan[k] for k in (*PLAN_KEYS.fixed, "space_cells") if k in plan}
        digest = hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.out_dir.resolve().name}-{digest}"

    def fix_plan(self, extend: bool) -> None:
        path = self.out_dir / PLAN_FILE
        old = yaml.safe_load(path.read_text()) if path.exists() else None
        new = self.plan()
        check_plan(self.out_dir, old, new, PLAN_KEYS, extend, "steadygan tune")
        (self.out_dir / RUNS).mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, yaml.safe_dump(new, sort_keys=False, allow_unicode=True))

    # --- the two rungs ----------------------------------------------------------------------

    def run(self, extend: bool = False, threads: int | None = None) -> tuple[Path, Path]:
        """Search, finals, best.yaml and the report; returns (best.yaml, report.md)."""
        for reason in self.dropped:
            _log(f"tune: left out of the space: {reason}")
        self.fix_plan(extend)
        r = self.request
        settings = SearchSettings(self.metric, self.higher, self.trials, r.sampler, r.pruner)
        study = open_study(self.storage, self.study_name(), settings,
                           [c.label for c in self.space.cells()])
        _log(f"tune: search, {self.trials} trials over {len(self.space.cells())} cells of space '{r.space}'")
        run_search(study, Objective(self.space, settings, self.job_for, threads), self.trials)
        cells = finalists(study, self.space, self.trials, r.finalists, self.higher)
        if not cells:
            raise ConfigError("no search trial reached its budget (every one was pruned, failed or diverged); "
                              "try a larger --steps, another space, or --pruner none")
        _log(f"tune: finals, {len(cells)} cells x {r.seeds} seeds: {', '.join(c.label for c in cells)}")
        run_finals([self.job_for(c, s) for c in cells for s in range(r.seeds)], threads, _log)
        table = standings(cells, self._runs_of, self.metric, self.higher)
        warning = winner_warning(table)
        if warning:
            _log(f"tune: {warning}")
        self._record_runs(cells)
        return self.write_best(table[0].cell), self.write_report(study, table)

    def _record_runs(self, cells: list[Cell]) -> None:
        """tune.yaml's list of runs, as a compare plan has it: the report reads the base config
        and the baseline from it."""
        path = self.out_dir / PLAN_FILE
        plan = yaml.safe_load(path.read_text())
        names = sorted(p.name for p in (self.out_dir / RUNS).iterdir() if p.is_dir())
        plan["runs"] = [{"variant": n.rsplit("-s", 1)[0], "seed": int(n.rsplit("-s", 1)[1]), "dir": f"{RUNS}/{n}"}
                        for n in names]
        plan["baseline"] = "baseline" if any(r["variant"] == "baseline" for r in plan["runs"]) else None
        atomic_write_text(path, yaml.safe_dump(plan, sort_keys=False, allow_unicode=True))

    def _runs_of(self, cell: Cell) -> list[Any]:
        names = {f"{cell.slug}-s{s}" for s in range(self.request.seeds)}
        return [run for run in load_runs(self.out_dir) if run.run_dir.name in names]

    def write_best(self, cell: Cell) -> Path:
        r = self.request
        cfg = load_config(r.base_config, [*r.base_overrides, *self._overrides(cell)])
        if r.steps is not None:
            cfg.train.steps = r.steps
        if r.time is not None:  # the budget the cell won at
            cfg.train.time = r.time
        cfg.train.name = f"tuned-{cell.slug}"
        path = self.out_dir / BEST_FILE
        header = f"# steadygan tune's winner: {cell.label} (the report: {self.out_dir / 'report' / 'report.md'})\n"
        atomic_write_text(path, header + dump_config(cfg))
        return path

    def write_report(self, study: Any, table: list[Standing]) -> Path:
        return write_report(self.out_dir, main_metric=self.metric + (":max" if self.higher else ":min"),
                            preface=lambda doc: self._tune_section(doc, study, table))

    def _tune_section(self, doc: Document, study: Any, table: list[Standing]) -> None:
        from .study import finished_search_trials

        doc.heading("Tune")
        doc.para(f"Space '{self.request.space}' ({len(self.space.cells())} cells), sampler {self.request.sampler}, "
                 f"pruner {self.request.pruner}, {self.trials} search trials at seed 0, then the best "
                 f"{len(table)} on {self.request.seeds} seeds; main metric `{self.metric}`. Winner: "
                 f"**{table[0].cell.label}** (`{self.out_dir / BEST_FILE}`)."
                 + (f" Note: {winner_warning(table)}." if winner_warning(table) else "")
                 + (f" Left out of the space: {'; '.join(self.dropped)}." if self.dropped else ""))
        doc.table(["rank", "cell", "seeds", "failed", f"final {self.metric}", "failures"],
                  [[str(i), s.cell.label, str(s.seeds), str(s.failed), fmt_pm(s.mean, s.std),
                    "; ".join(s.reasons) or "-"] for i, s in enumerate(table, 1)])
        trials = sorted(finished_search_trials(study), key=lambda t: t.number)
        doc.table(["trial", "cell", "stopped", "at step", f"value ({self.metric})"],
                  [[str(t.number), t.user_attrs.get("cell", "?"), str(t.user_attrs.get("stopped", t.state.name)),
                    str(t.user_attrs.get("step", "?")), fmt(t.value)] for t in trials])


def run_tune(request: TuneRequest, out_dir: Path, extend: bool = False) -> tuple[Path, Path]:
    """``steadygan tune``: returns (best.yaml, report.md)."""
    return Tune(request, out_dir).run(extend)


__all__ = ["TuneRequest", "Tune", "run_tune"]
