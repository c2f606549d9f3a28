"""How early, and how often wrongly, a health rule flags runs: scored on a corpus of lab runs.

Each run is labelled by the lab report's rule at its end (diverged or collapsed: failed;
otherwise healthy), and the report's rule is also applied at each evaluation in turn, as if
that were the end: the step at which the report would first have flagged it. A health rule
(:class:`~steadygan.training.health.HealthRule`, applied to the run's rows by
:func:`~steadygan.training.health.judge_rows`, as the monitor did while it trained) flags a
run at the first step its status leaves healthy. For a rule this gives: the share of failed
runs it flags, when (as a fraction of the report's step: 0.5 means twice as early), and the
share of healthy runs it flags at all; each share with its Wilson 95% interval.

Rules are fitted on one failing setting and scored on another (``fit_rule``), so a figure is
never measured on the runs that chose it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..training.health import HEALTHY, HealthRule, judge_rows
from .report.aggregate import COLLAPSE_MODES, COLLAPSE_RECALL, Run, collapse_reason, divergence_reason, load_runs

NEVER = math.inf


# Each signal switched off (HealthRule's fields), and the rows it reads.
OFF = {
    "variety": {"collapse_diversity": -1.0, "low_diversity": -1.0, "class_diversity": -1.0},  # class: probe or eval
    "classes": {"probe_class_kl": NEVER},
    "D wins": {"d_wins": 2.0},
    "evaluation": {"fid_blowup": NEVER, "fid_rise": NEVER, "class_kl": NEVER, "support_modes": -1.0,
                   "support_recall": -1.0},
}
READS = {"variety": ("probe", "eval"), "classes": ("probe",), "D wins": ("step",), "evaluation": ("eval",)}
PARAMS = {"variety": ("collapse_probes",), "classes": ("class_kl_probes",), "D wins": ("d_wins_steps",),
          "evaluation": ("class_kl_evals",)}  # the settings of each signal besides its thresholds in OFF


def alone(rule: HealthRule, signal: str) -> HealthRule:
    """``rule`` with every signal but ``signal`` (a key of OFF) switched off; the others'
    settings are the defaults, so that rules differing only in those are equal."""
    keep = ("warm_up", *OFF[signal], *PARAMS[signal])
    off = {k: v for name, values in OFF.items() if name != signal for k, v in values.items()}
    return HealthRule(**{k: getattr(rule, k) for k in keep}, **off)


def signal_rules(base: HealthRule | None = None) -> dict[str, HealthRule]:
    """The combined rule and each of its signals alone (the others set never to fire)."""
    base = base or HealthRule()
    # The candidate support signal: the report's own thresholds, read at every evaluation.
    support = {"support_modes": float(COLLAPSE_MODES), "support_recall": COLLAPSE_RECALL}
    return {
        "combined": base,
        "variety probe": alone(base, "variety"),
        "class probe": alone(base, "classes"),
        "D wins": alone(base, "D wins"),
        "evaluation": alone(base, "evaluation"),
        "combined + support": dataclasses.replace(base, **support),
        "support alone": dataclasses.replace(alone(base, "evaluation"), **{**OFF["evaluation"], **support}),
    }


@dataclass
class CorpusRun:
    run: Run
    kind: str                  # the lab folder it came from (its setting)
    failed: bool               # by the report's rule at the end
    report_step: int | None    # the step at which the report's rule, at each evaluation, first flags it


def _truncated(run: Run, step: int) -> Run:
    return dataclasses.replace(run, step_rows=[r for r in run.step_rows if r["step"] <= step],
                               eval_rows=[r for r in run.eval_rows if r["step"] <= step],
                               marker=None)


def _flagged_by_report(run: Run) -> bool:
    metric = "Metric/fid" if any("Metric/fid" in r for r in run.eval_rows) else None
    return bool(divergence_reason(run, metric, False if metric else None) or collapse_reason(run))


def report_step(run: Run, every: int) -> int | None:
    """The first evaluation step (a multiple of ``every``) at which the report's rule flags the
    run; a run stopped by a non-finite value is flagged at the step it stopped."""
    if run.marker and run.marker.get("status") == "diverged":
        stopped = int(run.marker.get("step") or run.last_step)
        earlier = [s for s in _eval_steps(run, every) if s < stopped and _flagged_by_report(_truncated(run, s))]
        return earlier[0] if earlier else stopped
    for step in _eval_steps(run, every):
        if _flagged_by_report(_truncated(run, step)):
            return step
    return None


def _eval_steps(run: Run, every: int) -> list[int]:
    return [r["step"] for r in run.eval_rows if r["step"] % every == 0]


def load_corpus(root: Path, every: int = 250, class_every: int | None = None) -> list[CorpusRun]:
    """Every run of every lab folder under ``root`` (a folder with a runs/ directory), labelled.

    ``class_every``: keep the probe's class signal only at multiples of this step, as a monitor
    that reads the classes at every other probe would have logged it (the same fixed noise and
    weights: the values kept are the ones it would have measured)."""
    out = []
    for folder in sorted({p.parent for p in Path(root).rglob("runs") if p.is_dir()}):
        for run in load_runs(folder):
            if run.marker is None:
                continue  # unfinished: no label yet
            if class_every:
                run.probe_rows = [r if r["step"] % class_every == 0 else {k: v for k, v in r.items()
                                                                          if k != "Health/class_kl"}
                                  for r in run.probe_rows]
            failed = _flagged_by_report(run)
            out.append(CorpusRun(run, folder.name, failed, report_step(run, every) if failed else None))
    return out


def rule_flag_step(run: Run, rule: HealthRule, every: int, reads: Iterable[str] = ("step", "eval", "probe")
                   ) -> int | None:
    """The first step at which the rule's status leaves healthy (evaluations every ``every``
    steps), replayed on the rows of the kinds in ``reads``."""
    rows = {"step": run.step_rows, "eval": [r for r in run.eval_rows if r["step"] % every == 0],
            "probe": run.probe_rows}
    judge = judge_rows([row for kind in reads for row in rows[kind]], rule)
    return next((s.step for s in judge.history if s.level != HEALTHY), None)


def flag_step(run: Run, rule: HealthRule, every: int, cache: dict | None = None) -> int | None:
    """:func:`rule_flag_step`, by parts: each signal keeps its own finding (HealthJudge), so on a
    run that never rolled back a rule first flags where the first of its signals alone would.
    A fit then replays each signal's few settings once (``cache``), not every combination of
    them, and a probe's signals without the thousand step rows."""
    if any("Rollback/count" in r for r in run.probe_rows):
        return rule_flag_step(run, rule, every)  # a rollback restarts every signal at once
    cache = {} if cache is None else cache
    flagged = []
    for signal, reads in READS.items():
        one = alone(rule, signal)
        key = (id(run), signal, one, every)  # the runs outlive the cache (a fit's)
        if key not in cache:
            cache[key] = rule_flag_step(run, one, every, reads)
        if cache[key] is not None:
            flagged.append(cache[key])
    return min(flagged, default=None)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share k/n (95% by default)."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Score:
    flagged_failed: int
    failed: int
    flagged_healthy: int
    healthy: int
    ratios: list[float]        # rule step / report step, per flagged failed run (report step known)

    @property
    def detection(self) -> float:
        return self.flagged_failed / self.failed if self.failed else math.nan

    @property
    def false_alarms(self) -> float:
        return self.flagged_healthy / self.healthy if self.healthy else math.nan

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else math.nan


def score(runs: Iterable[CorpusRun], rule: HealthRule, every: int, cache: dict | None = None) -> Score:
    """``cache``: a dict kept across calls on the same runs (a fit's), for :func:`flag_step`."""
    runs = list(runs)
    failed = [r for r in runs if r.failed]
    healthy = [r for r in runs if not r.failed]
    ratios, flagged = [], 0
    for r in failed:
        step = flag_step(r.run, rule, every, cache)
        if step is None:
            continue
        flagged += 1
        report = report_step(r.run, every)
        if report:
            ratios.append(step / report)
    false_alarms = sum(flag_step(r.run, rule, every, cache) is not None for r in healthy)
    return Score(flagged, len(failed), false_alarms, len(healthy), ratios)


# The first failing setting's runs are past the report's class-KL limit at its first evaluation
# (step 50 of the corpus), so a rule can only be early there with a short warm-up: 50 is in the grid.
GRID = {"low_diversity": (0.25, 0.35, 0.5, 0.6), "collapse_probes": (1, 2, 3), "class_kl_probes": (1, 2, 3),
        "d_wins": (0.95, 0.98, 0.995), "warm_up": (50, 100, 150, 200, 300)}


DEFAULT_RULE = HealthRule()


def fit_rule(runs: list[CorpusRun], every: int, max_false_alarms: float = 0.05) -> HealthRule | None:
    """The grid's rule that flags most failed runs of ``runs`` with at most ``max_false_alarms``
    of its healthy ones flagged (ties: the earlier median flag, then fewer false alarms, then
    the most default settings); None when no rule stays within that budget."""
    if not any(not r.failed for r in runs):
        raise ValueError("fitting needs healthy runs: without them the most eager rule would win")
    best, best_key, cache = None, None, {}
    for values in itertools.product(*GRID.values()):
        rule = HealthRule(**dict(zip(GRID, values)))
        s = score(runs, rule, every, cache)
        if not s.false_alarms <= max_false_alarms:
            continue
        # Ties: fewer false alarms, then more of the default settings (on a corpus that cannot
        # tell two settings apart, the fit keeps the default rather than the grid's first).
        as_default = sum(getattr(rule, k) == getattr(DEFAULT_RULE, k) for k in GRID)
        key = (s.detection, -s.median_ratio if s.ratios else -math.inf, -s.flagged_healthy, as_default)
        if best_key is None or key > best_key:
            best, best_key = rule, key
    return best
