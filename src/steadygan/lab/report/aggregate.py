"""The numbers of a lab report: read a lab folder's runs, aggregate them per variant.

Reads ``compare.yaml`` (written by ``steadygan compare``) and each run's ``stats.jsonl`` and
``done.json``. The aggregation functions below are pure (runs in, numbers out); the plots and
the two documents are built from them.

Definitions (also printed in every report):

* *final* / *best*: the metric's last / best evaluation value of a run; per variant the mean
  and sample standard deviation (n-1) over seeds.
* *time to quality*: the first evaluation whose value is at least as good as the threshold,
  in steps and in training seconds; per variant the mean over the seeds that got there.
* *diverged*: the run stopped on a NaN/inf (``done.json`` says ``diverged``), a logged loss is
  not finite, or a lower-is-better main metric blew up: its final value is not finite or is
  more than ``BLOWUP`` times the run's best (FID only: KID and KL live near 0, where a factor
  of two is noise).
* *collapsed* (rule version 5): 2-D data: final ``Metric/modes`` <= 1; labelled images: final
  ``Metric/class_kl`` > ln 2 (class coverage), or, for a conditional run whose classes are
  covered, final ``Metric/class_diversity_min`` < 0.25 (a class whose samples are less than a
  quarter as varied as its real images); other images: final ``Metric/recall`` < 0.05; a paired
  translation run, first: final ``Metric/l1`` at least the identity map's (``Metric/l1_identity``:
  the output no closer to its target than the input is); an unpaired (CycleGAN) run, first: in
  either direction, final ``Metric/target_share_*`` less than ``COLLAPSE_SHARE_MARGIN`` above the
  identity map's (``Metric/identity_target_share_*``: hardly more of its outputs in the target
  class than of its inputs; not applied where the identity's share is within the margin of 1).
  Version 1 had no diversity clause, version 2 no paired identity clause, version 3 no unpaired
  one, version 4 no margin (a share 0.001 above the identity's, one output in 1,000, passed);
  each can change only the runs it names.
* *step time*: per run the median of the ``elapsed_s`` differences between consecutive per-step
  rows (the median leaves out the spikes of sample grids, checkpoints and evaluation); per
  variant the mean over seeds, and its ratio to the baseline variant's.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from ...errors import ConfigError

PLAN_FILE = "compare.yaml"
TUNE_PLAN_FILE = "tune.yaml"  # steadygan tune's plan, with the same "runs" list
MARKER = "done.json"
REPORT_DIR = "report"
BLOWUP = 2.0             # final > BLOWUP x best counts as a blown-up (diverged) FID
# Only FID: KID and KL sit near 0 where a factor of 2 is sampling noise, not a blow-up.
BLOWUP_METRICS = ("Metric/fid", "Metric/fid_AtoB", "Metric/fid_BtoA")
COLLAPSE_MODES = 1       # final Metric/modes <= this: collapsed to (at most) one mode
COLLAPSE_RECALL = 0.05   # final Metric/recall below this: collapsed
# Final KL(generated classes || data classes) above ln 2: the classes drawn are at least as
# concentrated as half of K equally frequent classes drawn evenly (one class: ln K).
COLLAPSE_CLASS_KL = math.log(2)
# A conditional run whose classes are all drawn but whose samples within a class barely vary
# (metrics.diversity.LOW_DIVERSITY: a quarter of the real images' variety).
COLLAPSE_CLASS_DIVERSITY = 0.25
# An unpaired translation must put at least this share more of its outputs in the target class
# than the identity map puts of its inputs. A margin, not a strict comparison: both shares are
# estimated on at most a few thousand test images, and a generator that copies its input scores
# the identity's share give or take sampling noise (binomial standard error about 0.005 at 1,000
# images and a share of 0.03; 0.05 is some ten of them, and still a twentieth of the inputs).
COLLAPSE_SHARE_MARGIN = 0.05
# 2: the class-diversity clause (conditional runs); 3: the identity clause (paired translation);
# 4: the target-share clause (unpaired translation); 5: its margin.
COLLAPSE_RULE_VERSION = 5
LOSS_KEYS = ("Loss/D", "Loss/G")

# True when higher is better. Metrics not listed need an explicit direction: NAME:max or NAME:min.
METRIC_DIRECTIONS = {
    "Metric/fid": False, "Metric/kid": False, "Metric/kl": False,
    "Metric/precision": True, "Metric/recall": True, "Metric/density": True, "Metric/coverage": True,
    "Metric/modes": True, "Metric/hq": True, "Metric/class_agreement": True, "Metric/intra_fid": False,
    "Metric/classes": True, "Metric/class_kl": False, "Metric/class_recall": True, "Metric/class_recall_min": True,
    "Metric/class_coverage": True, "Metric/class_diversity": True, "Metric/class_diversity_min": True,
    "Metric/l1": False, "Metric/l1_identity": False, "Metric/psnr": True, "Metric/ssim": True,
    **{f"Metric/{name}_{d}": higher for d in ("AtoB", "BtoA")  # a CycleGAN run's, per direction
       for name, higher in (("fid", False), ("target_share", True), ("identity_target_share", True),
                            ("cycle_l1", False), ("silhouette_iou", True))},
}
DEFAULT_METRICS = ("Metric/fid", "Metric/modes")


@dataclass
class Run:
    """One run directory of a lab folder, as read from disk."""

    variant: str
    seed: int
    run_dir: Path
    step_rows: list[dict[str, Any]] = field(default_factory=list)   # per-step rows, by step, deduplicated
    eval_rows: list[dict[str, Any]] = field(default_factory=list)   # rows with Metric/* keys
    probe_rows: list[dict[str, Any]] = field(default_factory=list)  # Health/* (the monitor's), Rollback/* rows
    marker: dict[str, Any] | None = None                             # done.json, None while unfinished
    data_name: str | None = None                                     # config.yaml's data.name

    @property
    def status(self) -> str:
        if not self.marker:
            return "incomplete"
        stopped = self.marker.get("stopped")  # ended early on purpose: say how
        return stopped if stopped in ("failing", "pruned") else self.marker.get("status", "finished")

    @property
    def last_step(self) -> int:
        return self.step_rows[-1]["step"] if self.step_rows else 0

    @property
    def last_seconds(self) -> float | None:
        return self.step_rows[-1].get("elapsed_s") if self.step_rows else None


# --- reading ---------------------------------------------------------------------------------

def read_stats(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-step rows, evaluation rows, health rows) of a stats.jsonl, each sorted by step.

    A step written twice (a resumed run re-logs the steps after its last checkpoint) keeps
    its newest row; a line cut short by a kill is skipped.
    """
    steps: dict[int, dict[str, Any]] = {}
    evals: dict[int, dict[str, Any]] = {}
    health: dict[int, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict) or "step" not in row:
                continue
            if any(k.startswith("Metric/") for k in row):
                evals[row["step"]] = row
            elif any(k.startswith("Loss/") for k in row):
                steps[row["step"]] = row
            elif any(k.startswith(("Health/", "Rollback/")) for k in row):
                health.setdefault(row["step"], {}).update(row)  # a step's probe and its status row, as one
    return [steps[s] for s in sorted(steps)], [evals[s] for s in sorted(evals)], [health[s] for s in sorted(health)]


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def load_plan(out_dir: Path) -> dict[str, Any]:
    """compare.yaml (tune.yaml in a tune folder), or a plan rebuilt from the run directory names."""
    out_dir = Path(out_dir)
    plan = _read_yaml(out_dir / PLAN_FILE) or _read_yaml(out_dir / TUNE_PLAN_FILE)
    if plan.get("runs"):
        return plan
    runs = []
    for d in sorted((out_dir / "runs").glob("*-s*")):
        m = re.match(r"^(.*)-s(\d+)$", d.name)
        if m and d.is_dir():
            runs.append({"variant": m.group(1), "seed": int(m.group(2)), "dir": f"runs/{d.name}"})
    if not runs:
        raise ConfigError(f"{out_dir}: no {PLAN_FILE} and no runs/<variant>-s<seed> directories; "
                          "is this a folder written by `steadygan compare`?")
    return {"runs": runs, "baseline": "baseline" if any(r["variant"] == "baseline" for r in runs) else None}


def load_runs(out_dir: Path) -> list[Run]:
    """Every planned run that has a directory, in the plan's order."""
    out_dir = Path(out_dir)
    return [load_run(out_dir / entry["dir"], str(entry["variant"]), int(entry["seed"]))
            for entry in load_plan(out_dir)["runs"] if (out_dir / entry["dir"]).is_dir()]


def load_run(run_dir: Path, variant: str, seed: int) -> Run:
    """One run's stats, marker and data name, read from its directory."""
    step_rows, eval_rows, probe_rows = read_stats(run_dir / "stats.jsonl")
    try:
        marker = json.loads((run_dir / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        marker = None
    data_name = (_read_yaml(run_dir / "config.yaml").get("data") or {}).get("name")
    return Run(variant, seed, run_dir, step_rows, eval_rows, probe_rows, marker, data_name)


# --- pure aggregation --------------------------------------------------------------------------

def parse_metric(spec: str) -> tuple[str, bool]:
    """``"Metric/fid"`` -> ("Metric/fid", False); ``"Metric/x:max"`` -> ("Metric/x", True)."""
    name, _, direction = spec.partition(":")
    if not name.startswith("Metric/"):
        name = f"Metric/{name}"
    if direction:
        if direction not in ("max", "min"):
            raise ConfigError(f"metric direction must be :max or :min (got {spec!r})")
        return name, direction == "max"
    if name not in METRIC_DIRECTIONS:
        raise ConfigError(f"no known direction for {name}; write {name}:max (higher is better) or {name}:min. "
                          f"Known: {', '.join(METRIC_DIRECTIONS)}")
    return name, METRIC_DIRECTIONS[name]


def pick_main_metric(runs: Iterable[Run]) -> str | None:
    """Metric/fid if any run recorded it, else Metric/modes, else None."""
    present = {k for r in runs for row in r.eval_rows for k in row}
    return next((m for m in DEFAULT_METRICS if m in present), None)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def metric_points(run: Run, metric: str) -> list[tuple[int, float | None, float]]:
    """(step, seconds, value) of every evaluation of ``metric``; values may be non-finite.

    A null value is NaN: stats.jsonl stores a non-finite metric as null, and skipping it would
    make the evaluation before it the run's final one (a diverged run would report its last
    good FID). Seconds come from the row's ``elapsed_s`` or, when missing, the per-step row of
    that step.
    """
    by_step = {r["step"]: r.get("elapsed_s") for r in run.step_rows}
    return [(row["step"], row.get("elapsed_s", by_step.get(row["step"])),
             math.nan if row[metric] is None else float(row[metric]))
            for row in run.eval_rows
            if metric in row and (row[metric] is None or isinstance(row[metric], (int, float)))]


def final_value(run: Run, metric: str) -> float | None:
    points = metric_points(run, metric)
    return points[-1][2] if points else None


def best_value(run: Run, metric: str, higher: bool) -> float | None:
    values = [v for _, _, v in metric_points(run, metric) if math.isfinite(v)]
    if not values:
        return None
    return max(values) if higher else min(values)


def is_as_good(value: float, threshold: float, higher: bool) -> bool:
    return value >= threshold if higher else value <= threshold


def time_to_threshold(run: Run, metric: str, threshold: float, higher: bool) -> tuple[int, float | None] | None:
    """(steps, seconds) at the first evaluation at least as good as ``threshold``; None if never."""
    for step, seconds, value in metric_points(run, metric):
        if math.isfinite(value) and is_as_good(value, threshold, higher):
            return step, seconds
    return None


def divergence_reason(run: Run, metric: str | None = None, higher: bool | None = None) -> str | None:
    """Why a run counts as diverged (see the module docstring), or None."""
    if run.marker and run.marker.get("status") == "diverged":
        return f"stopped on a non-finite value at step {run.marker.get('step')}"
    for row in run.step_rows:
        for key in LOSS_KEYS:
            if key in row and not _finite(row[key]):
                return f"{key} = {row[key]} at step {row['step']}"
    if metric is not None and higher is False:
        final, best = final_value(run, metric), best_value(run, metric, False)
        if final is not None and not math.isfinite(final):
            return f"final {metric} = {final}"
        if metric in BLOWUP_METRICS and final is not None and best is not None and best > 0 \
                and final > BLOWUP * best:
            return f"final {metric} {final:.4g} > {BLOWUP:g} x best {best:.4g}"
    return None


def collapse_reason(run: Run) -> str | None:
    """Why a run counts as collapsed (mode collapse), or None (also when nothing was measured)."""
    l1, identity = final_value(run, "Metric/l1"), final_value(run, "Metric/l1_identity")
    if l1 is not None and identity is not None and l1 >= identity:
        return f"final Metric/l1 = {l1:.3g}, no better than the identity map's {identity:.3g}"
    for direction in ("AtoB", "BtoA"):
        share = final_value(run, f"Metric/target_share_{direction}")
        identity = final_value(run, f"Metric/identity_target_share_{direction}")
        # Where the classifier already puts nearly every input in the target class (identity
        # within the margin of 1), no share can clear the margin: the clause cannot judge there.
        if share is not None and identity is not None and share < identity + COLLAPSE_SHARE_MARGIN <= 1.0:
            return (f"final Metric/target_share_{direction} = {share:.3g}, less than {COLLAPSE_SHARE_MARGIN:g} "
                    f"above the identity map's {identity:.3g}")
    modes = final_value(run, "Metric/modes")
    if modes is not None:
        return f"final Metric/modes = {modes:g}" if modes <= COLLAPSE_MODES else None
    class_kl = final_value(run, "Metric/class_kl")
    if class_kl is not None and class_kl > COLLAPSE_CLASS_KL:
        return f"final Metric/class_kl = {class_kl:.3g} > ln 2"
    diversity = final_value(run, "Metric/class_diversity_min")
    if diversity is not None and diversity < COLLAPSE_CLASS_DIVERSITY:
        return f"final Metric/class_diversity_min = {diversity:.3g} < {COLLAPSE_CLASS_DIVERSITY:g}"
    if class_kl is not None:  # labelled images: class coverage (and diversity) decide, recall is not read
        return None
    recall = final_value(run, "Metric/recall")
    if recall is not None and recall < COLLAPSE_RECALL:
        return f"final Metric/recall = {recall:.3g}"
    return None


def step_time(run: Run) -> float | None:
    """Median seconds per step over consecutive logged steps.

    The median, not the mean: the elapsed time between two steps also holds whatever the
    trainer did at that boundary (sample grids, checkpoints, evaluation, the first step's
    warm-up), and in short runs those few spikes outweigh the step cost being compared.
    """
    deltas = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(run.step_rows, run.step_rows[1:])
              if b["step"] - a["step"] == 1 and _finite(a.get("elapsed_s")) and _finite(b.get("elapsed_s"))
              and b["elapsed_s"] >= a["elapsed_s"]]
    return statistics.median(deltas) if deltas else None


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample std, n) over the finite values; std is None below two values."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None, None, 0
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None), len(xs)


@dataclass
class VariantSummary:
    variant: str
    runs: int
    final_mean: float | None = None
    final_std: float | None = None
    best_mean: float | None = None
    best_std: float | None = None
    reached: int = 0                       # runs that reached the threshold
    steps_to_threshold: float | None = None
    seconds_to_threshold: float | None = None
    diverged: int = 0
    collapsed: int = 0
    step_time: float | None = None          # mean over seeds of each run's median step time
    step_time_ratio: float | None = None    # step_time / the baseline variant's


def variants_in_order(runs: Iterable[Run]) -> list[str]:
    return list(dict.fromkeys(r.variant for r in runs))


def summarize(runs: list[Run], metric: str | None, higher: bool | None = None, threshold: float | None = None,
              baseline: str | None = None) -> list[VariantSummary]:
    """One summary per variant (in order of appearance)."""
    out = []
    for variant in variants_in_order(runs):
        group = [r for r in runs if r.variant == variant]
        s = VariantSummary(variant, len(group))
        s.diverged = sum(divergence_reason(r, metric, higher) is not None for r in group)
        s.collapsed = sum(collapse_reason(r) is not None for r in group)
        s.step_time = mean_std(step_time(r) for r in group)[0]
        if metric is not None and higher is not None:
            s.final_mean, s.final_std, _ = mean_std(final_value(r, metric) for r in group)
            s.best_mean, s.best_std, _ = mean_std(best_value(r, metric, higher) for r in group)
            if threshold is not None:
                hits = [h for r in group if (h := time_to_threshold(r, metric, threshold, higher)) is not None]
                s.reached = len(hits)
                s.steps_to_threshold = mean_std(h[0] for h in hits)[0]
                s.seconds_to_threshold = mean_std(h[1] for h in hits)[0]
        out.append(s)
    base = next((s for s in out if s.variant == baseline), None)
    if base is not None and base.step_time:
        for s in out:
            if s.step_time is not None:
                s.step_time_ratio = s.step_time / base.step_time
    return out


def default_threshold(runs: list[Run], metric: str | None) -> float | None:
    """All modes recovered for Metric/modes on a known 2-D mixture; otherwise no default."""
    if metric != "Metric/modes":
        return None
    from ...data import is_mixture, mixture

    names = {r.data_name for r in runs if is_mixture(r.data_name)}
    if len(names) != 1:
        return None
    return float(len(mixture(names.pop())[0]))
