"""The report's figures (matplotlib, Agg): metric curves with seed bands, losses, gradients, samples."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from .aggregate import Run, _finite, metric_points, variants_in_order

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


def _aligned(series: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    """Seeds scored at the same steps (evaluation every N steps), a seed that stopped early
    scored at a prefix of them: a mean per step is fair, stopped seeds drop out of it."""
    longest = max((x for x, _ in series), key=len, default=np.array([]))
    return all(np.isin(x, longest).all() for x, _ in series)


def _clean(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finite points only, sorted by x, one per x: what ``np.interp`` needs to be right."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    x, first = np.unique(x, return_index=True)  # sorted; the first row of a repeated x wins
    return x, y[first]


def _band_interpolated(series: list[tuple[np.ndarray, np.ndarray]], n: int = 200) -> tuple[np.ndarray, ...]:
    """Seeds scored at different x (seconds always; steps when evaluation is by time):
    interpolate each onto one grid, over the span that every seed covers (outside it a mean
    would jump as seeds enter and leave)."""
    series = [s for s in (_clean(x, y) for x, y in series) if len(s[0])]
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


def _suptitle(fig, text: str, fontsize: float) -> None:
    """A figure title wrapped to the figure's width: a narrow figure (one run) keeps all of it."""
    chars = max(16, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))  # a character: about 0.6 em wide
    fig.suptitle(textwrap.fill(text, chars), fontsize=fontsize)


def _save(fig, path: Path) -> Path:
    # tight_layout ignores a figure title: keep room for its lines above the axes' titles.
    lines = fig.get_suptitle().count("\n") + 1
    top = 1 - (0.1 + 0.2 * lines) / fig.get_figheight() if fig.get_suptitle() else 1
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def plot_metric(runs: list[Run], metric: str, threshold: float | None, out: Path, axis: str) -> Path:
    """The metric vs steps (axis="steps") or vs training seconds (axis="seconds")."""
    plt = _pyplot()
    variants = variants_in_order(runs)
    colors = _colors(variants)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    per_seed_any = False
    for v in variants:
        series = []
        for r in (r for r in runs if r.variant == v):
            pts = [(s, t, y) for s, t, y in metric_points(r, metric) if axis == "steps" or t is not None]
            x = np.array([p[0] if axis == "steps" else p[1] for p in pts], dtype=float)
            series.append((x, np.array([p[2] for p in pts], dtype=float)))
        if axis == "steps" and _aligned(series):
            _draw_band(ax, _band_by_step(series), colors[v], v)
            continue
        # Each seed's own curve, faint, since the mean only covers the span all seeds share.
        per_seed_any = True
        for x, y in series:
            ax.plot(x, y, color=colors[v], alpha=0.35, lw=0.8, marker="o" if len(x) < 30 else None, ms=2)
        _draw_band(ax, _band_interpolated(series), colors[v], v)
        if not ax.get_legend_handles_labels()[1].count(v):
            ax.plot([], [], color=colors[v], label=v)
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("generator steps" if axis == "steps" else "training seconds")
    ax.set_ylabel(metric)
    x_name = "steps" if axis == "steps" else "training seconds"
    ax.set_title(f"{metric} vs {x_name} " + ("(faint: each seed; bold: their mean; band: min..max)" if per_seed_any
                                              else "(mean over seeds; band: min..max)"), fontsize=10)
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
    _suptitle(fig, title, 11)
    return _save(fig, out)


def plot_samples(runs: list[Run], out: Path) -> Path | None:
    """Variant rows x seed columns: 2-D samples over the true modes, or each run's newest grid."""
    from ...data import is_mixture

    if not runs:
        return None
    plt = _pyplot()
    variants = variants_in_order(runs)
    seeds = sorted({r.seed for r in runs})
    toy = all(is_mixture(r.data_name) for r in runs)
    size = 2.6 if toy else 3.2
    fig, axes = plt.subplots(len(variants), len(seeds), figsize=(size * len(seeds) + 0.6, size * len(variants)),
                             squeeze=False)
    for i, v in enumerate(variants):
        for j, seed in enumerate(seeds):
            ax = axes[i, j]
            run = next((r for r in runs if r.variant == v and r.seed == seed), None)
            note = _draw_toy(ax, run) if toy else _draw_grid(ax, run)
            ax.set_title(f"seed {seed}" + (f", {note}" if note else ""), fontsize=8)
            if j == 0:
                ax.set_ylabel(v, fontsize=9)
    _suptitle(fig, "generated samples (2,500 points, noise seed 0) over the true modes" if toy
              else "newest sample grid of each run", 10)
    return _save(fig, out)


def _draw_toy(ax, run: Run | None) -> str:
    from ...data import mixture
    from ...errors import CheckpointError
    from ...training.sampling import load_generator

    ax.set_xticks([])
    ax.set_yticks([])
    if run is None:
        return "no run"
    modes = mixture(run.data_name)[0].numpy()
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

    from ...apps.pictures import newest_sample_grid

    # No ticks or frame, but keep the axis on: the first column's y label names the variant.
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    grid = newest_sample_grid(run.run_dir) if run else None
    if grid is None:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        return ""
    with Image.open(grid) as img:
        ax.imshow(np.asarray(img.convert("RGB")))
    return f"step {int(grid.stem.split('-')[1])}"
