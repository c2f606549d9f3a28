"""A run's health history: when it went wrong, which signal said so first, and a picture of it.

``steadygan health RUN`` reads the run's stats.jsonl, applies the health status
(``steadygan.training.health``) to its rows in order, as the monitor did while it trained, and
draws the signals with the status changes marked, beside the run's sample grids at those steps.
Works on any run: one trained before the probe existed is judged on what it logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...training.health import HEALTHY, HealthJudge, HealthStatus, judge_rows, step_signals
from ...training.recovery import read_history
from ...training.tracking import read_stats
from .aggregate import Run
from .plots import _pyplot, _save

PANELS = (  # (title, keys, log scale)
    ("variety of the samples (1: the data's)", ("Health/diversity", "Health/diversity_d",
                                                "Health/class_diversity_min"), False),
    ("classes drawn (class KL; ln 2 = 0.69: as few as half)", ("Health/class_kl", "Metric/class_kl"), False),
    ("D's accuracy (mean of 50 steps)", ("Health/d_real_acc", "Health/d_fake_acc"), False),
    ("losses", ("Loss/D", "Loss/G"), False),
    ("gradient norms before clipping", ("Grad/D/norm", "Grad/G/norm"), True),
    ("evaluation", ("Metric/fid",), False),
)


@dataclass
class RunHealth:
    run_dir: Path
    rows: list[dict[str, Any]]
    judge: HealthJudge

    @property
    def first_warning(self) -> HealthStatus | None:
        return next((s for s in self.judge.history if s.level != HEALTHY), None)

    @property
    def last_step(self) -> int:
        return max((int(r["step"]) for r in self.rows), default=0)


def run_health(run_dir: str | Path) -> RunHealth:
    """The health history of a run directory (ConfigError when it has no stats yet)."""
    run_dir = Path(run_dir)
    rows = read_stats(run_dir / "stats.jsonl")
    if not rows:
        raise ConfigError(f"{run_dir}: no stats.jsonl rows (not a run directory, or it has not trained a step)")
    return RunHealth(run_dir, rows, judge_rows(rows))


def _rollbacks(run_dir: Path | None, rows: list[dict[str, Any]]) -> list[int]:
    """The step each rollback left from. The run's config history has one line per remedy; its
    stats rows are the fallback (two rollbacks to one step share a step there, and merged rows
    keep one of them)."""
    history = read_history(run_dir) if run_dir is not None else []
    if history:
        return [int(h["failed_at"]) for h in history]
    return [int(r.get("Rollback/failed_at", r.get("Rollback/diverged_at", r["step"]))) for r in rows
            if "Rollback/count" in r]


def _earliest(judge: HealthJudge, rollbacks: list[int]) -> tuple[int, str] | None:
    """The first warning: the judge's, or a failure a rollback cut from the rows, if earlier."""
    found = [(s.step, s.signal or "") for s in judge.history if s.level != HEALTHY]
    found += [(step, "rolled back") for step in rollbacks]
    return min(found, key=lambda f: f[0]) if found else None


def first_warning(run: Run) -> str:
    """The report's column: the step and signal of a lab run's first warning, or "none"; and
    the remedies it went through (a rollback cuts the rows it went back over, so the failure
    that caused it is read from the config history)."""
    judge = judge_rows(run.step_rows + run.eval_rows + run.probe_rows)
    rollbacks = _rollbacks(run.run_dir, run.probe_rows)
    first = _earliest(judge, rollbacks)
    if first is None:
        return "none"
    return f"{first[0]} ({first[1]})" + (
        f"; {len(rollbacks)} remed{'y' if len(rollbacks) == 1 else 'ies'}" if rollbacks else "")


def describe(health: RunHealth) -> str:
    """The history in words: one line per change of status, then the first warning."""
    now = health.judge.status
    lines = [f"{health.run_dir}: {health.last_step} steps; status now: {now.level}"
             + (f" (since step {now.step})" if now.level != HEALTHY else "")]
    if health.judge.history:
        lines.append(f"{'step':>7}  {'status':<8} {'signal':<26} reason")
        lines += [f"{s.step:>7}  {s.level:<8} {s.signal or '':<26} {s.reason}" for s in health.judge.history]
    first = _earliest(health.judge, _rollbacks(health.run_dir, health.rows))
    lines.append(f"first warning at step {first[0]} ({first[1]})" if first else "no warning")
    for h in read_history(health.run_dir):  # train.on_failure=heal
        remedy = ", ".join(h["overrides"] + ([f"learning rates x{h['lr_factor']:g}"] if h["lr_factor"] != 1 else []))
        lines.append(f"remedy {h['remedy']}: failing at step {h['failed_at']} ({h['why']}); back to step "
                     f"{h['step']} with {remedy}")
    return "\n".join(lines)


def _series(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    if key.startswith("Health/d_"):
        points = [(r["step"], step_signals(r).get(key)) for r in rows]
        steps = np.array([s for s, v in points if v is not None], dtype=float)
        values = np.array([v for _, v in points if v is not None], dtype=float)
        return steps, _trailing_mean(values, 50)
    points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return np.array([s for s, _ in points], dtype=float), np.array([v for _, v in points], dtype=float)


def _trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Each value's mean with the ``window - 1`` before it (fewer at the start): no edge dips."""
    total = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (total[ends] - total[starts]) / (ends - starts)


def _grid_at(run_dir: Path, step: int) -> tuple[int, Path] | None:
    """The newest sample grid at or before ``step`` (the first one after it if none is before)."""
    grids = sorted((int(p.stem.split("-")[1]), p) for p in (run_dir / "samples").glob("step-*.png"))
    before = [g for g in grids if g[0] <= step]
    return before[-1] if before else (grids[0] if grids else None)


def plot_health(health: RunHealth, out: Path) -> Path:
    """Signals (left) with the status changes marked; the sample grids at those steps (right)."""
    from PIL import Image

    plt = _pyplot()
    marks = list(health.judge.history)
    grid_steps = [s.step for s in marks[:3]] + [health.last_step]
    grids = [g for g in (_grid_at(health.run_dir, s) for s in grid_steps) if g is not None]
    grids = list(dict.fromkeys(grids))  # one panel per grid file
    panels = [p for p in PANELS if any(len(_series(health.rows, k)[0]) for k in p[1])]
    rows = max(len(panels), len(grids), 1)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 2.2 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1]})
    for ax, (title, keys, log) in zip(axes[:, 0], panels):
        for key in keys:
            x, y = _series(health.rows, key)
            if len(x):
                name = key.split("/", 1)[1]
                ax.plot(x, y, lw=1, label=f"{name} (evaluation)" if key.startswith("Metric/") and len(keys) > 1
                        else name)
        for status in marks:
            ax.axvline(status.step, color={"warning": "orange", "failing": "red"}.get(status.level, "green"),
                       lw=1, ls="--")
        ax.set_yscale("log" if log else "linear")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="best")
    for ax in axes[len(panels):, 0]:
        ax.axis("off")
    for ax, (step, path) in zip(axes[:, 1], grids):
        with Image.open(path) as img:
            ax.imshow(np.asarray(img.convert("RGB")))
        ax.set_title(f"samples at step {step}", fontsize=9)
        ax.axis("off")
    for ax in axes[len(grids):, 1]:
        ax.axis("off")
    fig.suptitle(f"{health.run_dir.name}: {health.judge.status}", fontsize=10)
    return _save(fig, out)
