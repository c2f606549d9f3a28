"""``steadygan report``: aggregate a lab folder's runs into report.md, report.html and plots.

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
  more than ``BLOWUP`` times the run's best.
* *collapsed*: 2-D data: final ``Metric/modes`` <= 1; images: final ``Metric/recall`` < 0.05.
* *step time*: per run the median of the ``elapsed_s`` differences between consecutive per-step
  rows (the median leaves out the spikes of sample grids, checkpoints and evaluation); per
  variant the mean over seeds, and its ratio to the baseline variant's.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from .registry import ConfigError

PLAN_FILE = "compare.yaml"
MARKER = "done.json"
REPORT_DIR = "report"
BLOWUP = 2.0             # final > BLOWUP x best counts as a blown-up (diverged) lower-is-better metric
COLLAPSE_MODES = 1       # final Metric/modes <= this: collapsed to (at most) one mode
COLLAPSE_RECALL = 0.05   # final Metric/recall below this: collapsed
LOSS_KEYS = ("Loss/D", "Loss/G")

# True when higher is better. Metrics not listed need an explicit direction: NAME:max or NAME:min.
METRIC_DIRECTIONS = {
    "Metric/fid": False, "Metric/kid": False, "Metric/kl": False,
    "Metric/precision": True, "Metric/recall": True, "Metric/density": True, "Metric/coverage": True,
    "Metric/modes": True, "Metric/hq": True,
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
    marker: dict[str, Any] | None = None                             # done.json, None while unfinished
    data_name: str | None = None                                     # config.yaml's data.name

    @property
    def status(self) -> str:
        return self.marker.get("status", "finished") if self.marker else "incomplete"

    @property
    def last_step(self) -> int:
        return self.step_rows[-1]["step"] if self.step_rows else 0

    @property
    def last_seconds(self) -> float | None:
        return self.step_rows[-1].get("elapsed_s") if self.step_rows else None


# --- reading ---------------------------------------------------------------------------------

def read_stats(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-step rows, evaluation rows) of a stats.jsonl, each sorted by step.

    A step written twice (a resumed run re-logs the steps after its last checkpoint) keeps
    its newest row; a line cut short by a kill is skipped.
    """
    steps: dict[int, dict[str, Any]] = {}
    evals: dict[int, dict[str, Any]] = {}
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
    return [steps[s] for s in sorted(steps)], [evals[s] for s in sorted(evals)]


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def load_plan(out_dir: Path) -> dict[str, Any]:
    """compare.yaml, or a plan rebuilt from the run directory names when it is missing."""
    out_dir = Path(out_dir)
    plan = _read_yaml(out_dir / PLAN_FILE)
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
    runs = []
    for entry in load_plan(out_dir)["runs"]:
        run_dir = out_dir / entry["dir"]
        if not run_dir.is_dir():
            continue
        step_rows, eval_rows = read_stats(run_dir / "stats.jsonl")
        try:
            marker = json.loads((run_dir / MARKER).read_text())
        except (OSError, json.JSONDecodeError):
            marker = None
        data_name = (_read_yaml(run_dir / "config.yaml").get("data") or {}).get("name")
        runs.append(Run(str(entry["variant"]), int(entry["seed"]), run_dir, step_rows, eval_rows, marker, data_name))
    return runs


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

    Seconds come from the row's ``elapsed_s`` or, when missing, the per-step row of that step.
    """
    by_step = {r["step"]: r.get("elapsed_s") for r in run.step_rows}
    return [(row["step"], row.get("elapsed_s", by_step.get(row["step"])), float(row[metric]))
            for row in run.eval_rows if metric in row and isinstance(row[metric], (int, float))]


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
        if final is not None and best is not None and best > 0 and final > BLOWUP * best:
            return f"final {metric} {final:.4g} > {BLOWUP:g} x best {best:.4g}"
    return None


def collapse_reason(run: Run) -> str | None:
    """Why a run counts as collapsed (mode collapse), or None (also when nothing was measured)."""
    modes = final_value(run, "Metric/modes")
    if modes is not None:
        return f"final Metric/modes = {modes:g}" if modes <= COLLAPSE_MODES else None
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
    from .data.toy import TOY_MIXTURES

    names = {r.data_name for r in runs if r.data_name in TOY_MIXTURES}
    if len(names) != 1:
        return None
    return float(len(TOY_MIXTURES[names.pop()][0]()))


# --- plots -----------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(variants: list[str]) -> dict[str, Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20")
    return {v: cmap(i % cmap.N) for i, v in enumerate(variants)}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (same length; the first points average what there is)."""
    if window <= 1 or len(values) == 0:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _band_by_step(series: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Mean, min and max over seeds at every x that any seed has (seeds that stopped drop out)."""
    table: dict[float, list[float]] = {}
    for xs, ys in series:
        for x, y in zip(xs, ys):
            if math.isfinite(y):
                table.setdefault(float(x), []).append(float(y))
    xs = np.array(sorted(table))
    vals = [table[x] for x in xs]
    return (xs, np.array([np.mean(v) for v in vals]), np.array([min(v) for v in vals]),
            np.array([max(v) for v in vals]))


def _band_by_time(series: list[tuple[np.ndarray, np.ndarray]], n: int = 200) -> tuple[np.ndarray, ...]:
    """Seeds are evaluated at different seconds: interpolate each onto one grid, over the span
    that every seed covers (outside it a mean would jump as seeds enter and leave)."""
    series = [(x, y) for x, y in series if len(x)]
    if not series:
        return (np.array([]),) * 4
    start, end = max(x[0] for x, _ in series), min(x[-1] for x, _ in series)
    if end < start:
        return (np.array([]),) * 4
    grid = np.linspace(start, end, n) if end > start else np.array([start])
    rows = np.stack([np.interp(grid, x, y) for x, y in series])
    return grid, rows.mean(0), rows.min(0), rows.max(0)


def _thin(*arrays: np.ndarray, limit: int = 2000) -> tuple[np.ndarray, ...]:
    step = max(1, len(arrays[0]) // limit)
    return tuple(a[::step] for a in arrays)


def _draw_band(ax, band: tuple[np.ndarray, ...], color, label: str) -> None:
    x, mean, lo, hi = _thin(*band)
    if len(x) == 0:
        return
    ax.plot(x, mean, color=color, label=label, lw=1.5, marker="o" if len(x) < 30 else None, ms=3)
    ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def plot_metric(runs: list[Run], metric: str, threshold: float | None, out: Path, axis: str) -> Path:
    """The metric vs steps (axis="steps") or vs training seconds (axis="seconds")."""
    plt = _pyplot()
    variants = variants_in_order(runs)
    colors = _colors(variants)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for v in variants:
        series = []
        for r in (r for r in runs if r.variant == v):
            pts = [(s, t, y) for s, t, y in metric_points(r, metric) if axis == "steps" or t is not None]
            x = np.array([p[0] if axis == "steps" else p[1] for p in pts], dtype=float)
            series.append((x, np.array([p[2] for p in pts], dtype=float)))
        if axis == "steps":
            _draw_band(ax, _band_by_step(series), colors[v], v)
            continue
        # Each seed's own curve, faint, since the mean only covers the span all seeds share.
        for x, y in series:
            ax.plot(x, y, color=colors[v], alpha=0.35, lw=0.8, marker="o" if len(x) < 30 else None, ms=2)
        _draw_band(ax, _band_by_time(series), colors[v], v)
        if not ax.get_legend_handles_labels()[1].count(v):
            ax.plot([], [], color=colors[v], label=v)
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("generator steps" if axis == "steps" else "training seconds")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs steps (mean over seeds, band: min..max)" if axis == "steps"
                 else f"{metric} vs training seconds (faint: each seed; bold: their mean)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out)


def _step_series(run: Run, key: str, window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in run.step_rows if key in r and _finite(r[key])]
    x = np.array([r["step"] for r in rows], dtype=float)
    y = np.array([r[key] for r in rows], dtype=float)
    return x, smooth(y, window if window is not None else max(1, len(y) // 25))


def plot_step_keys(runs: list[Run], keys: list[str], out: Path, title: str, log_keys: tuple[str, ...] = ()) -> Path:
    """One panel per stats key, smoothed per run, mean and min..max band over seeds."""
    plt = _pyplot()
    variants = variants_in_order(runs)
    colors = _colors(variants)
    cols = 2
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.4 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for v in variants:
            _draw_band(ax, _band_by_step([_step_series(r, key) for r in runs if r.variant == v]), colors[v], v)
        if key in log_keys and ax.has_data() and all(
                y > 0 for line in ax.get_lines() for y in line.get_ydata()):
            ax.set_yscale("log")
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("generator steps")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return _save(fig, out)


def plot_samples(runs: list[Run], out: Path) -> Path | None:
    """Variant rows x seed columns: 2-D samples over the true modes, or each run's newest grid."""
    from .data.toy import TOY_MIXTURES

    if not runs:
        return None
    plt = _pyplot()
    variants = variants_in_order(runs)
    seeds = sorted({r.seed for r in runs})
    toy = all(r.data_name in TOY_MIXTURES for r in runs)
    size = 2.6 if toy else 3.2
    fig, axes = plt.subplots(len(variants), len(seeds), figsize=(size * len(seeds) + 0.6, size * len(variants)),
                             squeeze=False)
    for i, v in enumerate(variants):
        for j, seed in enumerate(seeds):
            ax = axes[i, j]
            run = next((r for r in runs if r.variant == v and r.seed == seed), None)
            note = _draw_toy(ax, run, TOY_MIXTURES) if toy else _draw_grid(ax, run)
            ax.set_title(f"seed {seed}" + (f", {note}" if note else ""), fontsize=8)
            if j == 0:
                ax.set_ylabel(v, fontsize=9)
    fig.suptitle("generated samples (2,500 points, noise seed 0) over the true modes" if toy
                 else "newest sample grid of each run", fontsize=10)
    return _save(fig, out)


def _draw_toy(ax, run: Run | None, mixtures: dict) -> str:
    from .checkpoint import CheckpointError
    from .sampling import load_generator

    ax.set_xticks([])
    ax.set_yticks([])
    if run is None:
        return "no run"
    modes = mixtures[run.data_name][0]().numpy()
    span = float(np.abs(modes).max()) * 1.5
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    try:
        loaded = load_generator(run.run_dir)
    except (ConfigError, CheckpointError):
        ax.text(0.5, 0.5, "no checkpoint", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        return ""
    points = loaded.sample(2500, seed=0).float().numpy()
    points = points[np.isfinite(points).all(1)]
    ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.3, color="tab:blue")
    ax.scatter(modes[:, 0], modes[:, 1], s=25, marker="x", color="tab:red")
    return f"step {loaded.step}"


def _draw_grid(ax, run: Run | None) -> str:
    from PIL import Image

    ax.axis("off")
    grids = sorted((run.run_dir / "samples").glob("step-*.png")) if run else []
    if not grids:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        return ""
    with Image.open(grids[-1]) as img:
        ax.imshow(np.asarray(img.convert("RGB")))
    return f"step {int(grids[-1].stem.split('-')[1])}"


# --- documents -------------------------------------------------------------------------------

class Document:
    """Blocks rendered to both Markdown and self-contained HTML, so the two never disagree."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, Any]] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", (path, caption)))

    def markdown(self) -> str:
        out = []
        for kind, value in self.blocks:
            if kind == "h":
                out.append(f"{'#' * value[0]} {value[1]}")
            elif kind == "p":
                out.append(value)
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in value))
            elif kind == "table":
                header, rows = value
                lines = [header, ["---"] * len(header), *rows]
                out.append("\n".join("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines))
            elif kind == "img":
                out.append(f"![{value[1]}]({value[0].name})\n\n*{value[1]}*")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        def inline(text: str) -> str:
            return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))

        body = []
        for kind, value in self.blocks:
            if kind == "h":
                body.append(f"<h{value[0]}>{inline(value[1])}</h{value[0]}>")
            elif kind == "p":
                body.append(f"<p>{inline(value)}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in value) + "</ul>")
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{inline(c)}</th>" for c in header)
                cells = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(value[0].read_bytes()).decode("ascii")
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(value[1])}">'
                            f"<figcaption>{inline(value[1])}</figcaption></figure>")
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;"
                 "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
                 "img{max-width:100%}figcaption{color:#555;font-size:90%}code{background:#f3f3f3;padding:0 3px}")
        return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def fmt(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}g}"


def fmt_pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    return fmt(mean) + (f" ± {fmt(std, 2)}" if std is not None else "")


def _setup_section(doc: Document, plan: dict[str, Any], runs: list[Run]) -> None:
    doc.heading("Setup")
    items = [f"base config: `{plan.get('base_config') or '(defaults)'}`"]
    if plan.get("base_overrides"):
        items.append("overrides: " + " ".join(f"`{o}`" for o in plan["base_overrides"]))
    items.append(f"seeds: {', '.join(str(s) for s in plan.get('seeds') or sorted({r.seed for r in runs}))}")
    budget = [b for b in (f"{plan['steps']} steps" if plan.get("steps") else None,
                          f"{plan['time']:g} s" if plan.get("time") else None) if b]
    if budget:
        items.append("budget per run: " + " or ".join(budget) + (", whichever comes first" if len(budget) > 1 else ""))
    doc.bullets(items)
    if plan.get("variants"):
        doc.table(["variant", "spec", "config overrides"],
                  [[v["label"], f"`{v['spec']}`", " ".join(f"`{o}`" for o in v["overrides"]) or "(none)"]
                   for v in plan["variants"]])


def _summary_section(doc: Document, summaries: list[VariantSummary], metric: str | None, higher: bool | None,
                     threshold: float | None, baseline: str | None) -> None:
    doc.heading("Summary")
    header = ["variant", "runs"]
    if metric:
        header += [f"final {metric}", f"best {metric}"]
        if threshold is not None:
            header += ["reached threshold", "steps to threshold", "seconds to threshold"]
    header += ["diverged", "collapsed", "s/step", f"x {baseline}" if baseline else "x baseline"]
    rows = []
    for s in summaries:
        row = [s.variant, str(s.runs)]
        if metric:
            row += [fmt_pm(s.final_mean, s.final_std), fmt_pm(s.best_mean, s.best_std)]
            if threshold is not None:
                row += [f"{s.reached}/{s.runs}", fmt(s.steps_to_threshold), fmt(s.seconds_to_threshold)]
        row += [f"{s.diverged}/{s.runs}", f"{s.collapsed}/{s.runs}", fmt(s.step_time, 3), fmt(s.step_time_ratio, 3)]
        rows.append(row)
    doc.table(header, rows)
    if metric:
        better = "higher" if higher else "lower"
        doc.para(f"Main metric `{metric}` ({better} is better): mean ± sample standard deviation over seeds."
                 + (f" Threshold {threshold:g}: first evaluation at least as good; mean over the runs that "
                    "reached it." if threshold is not None else " No threshold given (--threshold), so no "
                    "time-to-quality columns."))
    else:
        doc.para("No evaluation metric was recorded in any run (train with evaluation enabled to record "
                 "`Metric/*` rows), so this report covers losses, gradients, step time and divergence only.")


def _runs_section(doc: Document, runs: list[Run], metric: str | None, higher: bool | None) -> None:
    doc.heading("Runs")
    header = ["variant", "seed", "status", "steps", "seconds"]
    header += [f"final {metric}"] if metric else []
    header += ["diverged", "collapsed", "directory"]
    rows = []
    for r in runs:
        row = [r.variant, str(r.seed), r.status, str(r.last_step), fmt(r.last_seconds, 3)]
        row += [fmt(final_value(r, metric))] if metric else []
        row += [divergence_reason(r, metric, higher) or "no", collapse_reason(r) or "no", f"`{r.run_dir.name}`"]
        rows.append(row)
    doc.table(header, rows)


def write_report(out_dir: Path, main_metric: str | None = None, threshold: float | None = None) -> Path:
    """Write report/report.md, report/report.html and the PNG plots; returns report.md's path."""
    out_dir = Path(out_dir)
    plan = load_plan(out_dir)
    runs = load_runs(out_dir)
    if not runs:
        raise ConfigError(f"{out_dir}: none of the planned runs has started yet; run `steadygan compare` first")
    report_dir = out_dir / REPORT_DIR
    report_dir.mkdir(parents=True, exist_ok=True)

    metric, higher = (parse_metric(main_metric) if main_metric else (pick_main_metric(runs), None))
    if metric is not None and higher is None:
        higher = METRIC_DIRECTIONS[metric]
    if metric is not None and not any(metric in row for r in runs for row in r.eval_rows):
        metric_missing, metric = metric, None
    else:
        metric_missing = None
    if threshold is None:
        threshold = default_threshold(runs, metric)
    baseline = plan.get("baseline")
    if baseline not in {r.variant for r in runs}:
        baseline = runs[0].variant  # step-time ratios need some reference: the first variant
    summaries = summarize(runs, metric, higher, threshold, baseline)

    doc = Document()
    doc.heading(f"Stability lab: {out_dir.name}", 1)
    planned = len(plan.get("runs", []))
    unfinished = [r for r in runs if r.marker is None]
    notes = [f"{len(runs)} of {planned} planned runs found"]
    if unfinished:
        notes.append(f"{len(unfinished)} not finished (rerun the same `steadygan compare` to resume)")
    doc.para("; ".join(notes) + ".")
    if metric_missing:
        doc.para(f"No run recorded `{metric_missing}`; reporting without a main metric.")
    _setup_section(doc, plan, runs)
    _summary_section(doc, summaries, metric, higher, threshold, baseline)

    doc.heading("Plots")
    if metric:
        doc.image(plot_metric(runs, metric, threshold, report_dir / "metric_vs_steps.png", "steps"),
                  f"{metric} vs generator steps")
        doc.image(plot_metric(runs, metric, threshold, report_dir / "metric_vs_seconds.png", "seconds"),
                  f"{metric} vs training seconds, the cost of each stabiliser included (the mean and its "
                  "min..max band cover the span that all seeds of a variant reached)")
    doc.image(plot_step_keys(runs, list(LOSS_KEYS), report_dir / "losses.png", "losses (moving average)"),
              "discriminator and generator losses, smoothed per run; band: min..max over seeds")
    doc.image(plot_step_keys(runs, ["Grad/D/norm", "Grad/G/norm", "Grad/D/clipped", "Grad/G/clipped"],
                             report_dir / "gradients.png", "gradient norms (before clipping) and clipped fractions",
                             log_keys=("Grad/D/norm", "Grad/G/norm")),
              "gradient norms before clipping and the fraction of values the clipper changed")
    samples = plot_samples(runs, report_dir / "samples.png")
    if samples is not None:
        doc.image(samples, "samples of each run's newest checkpoint: variants in rows, seeds in columns")
    _runs_section(doc, runs, metric, higher)

    doc.heading("Definitions")
    doc.bullets([
        "final / best: the last / best evaluation of a run; per variant, mean ± sample std over seeds.",
        "time to quality: steps and training seconds at the first evaluation at least as good as the threshold.",
        f"diverged: stopped on a NaN/inf, a non-finite logged loss, or (lower-is-better main metric) a final "
        f"value more than {BLOWUP:g}x the run's best.",
        f"collapsed: final `Metric/modes` <= {COLLAPSE_MODES} (2-D data) or final `Metric/recall` < "
        f"{COLLAPSE_RECALL:g} (images).",
        "s/step: per run the median elapsed seconds between consecutive logged steps (leaving out the "
        "spikes of sample grids, checkpoints and evaluation), mean over seeds; x baseline: ratio to the "
        "baseline variant's. Total wall-clock cost shows in the seconds column and the time plot.",
    ])
    md = report_dir / "report.md"
    md.write_text(doc.markdown())
    (report_dir / "report.html").write_text(doc.html(f"steadygan report: {out_dir.name}"))
    return md
