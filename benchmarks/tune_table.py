"""Summarise `benchmarks/lab.sh tune`: each search's compute, what it stopped early and when, and
its winner on 5 seeds, for BENCHMARKS.md.

    python benchmarks/tune_table.py lab/tune/beta1-0.9-lr-5e-3 lab/tune/lr-5e-2

Each SETTING folder holds grid/, tpe/ and random/ (`steadygan tune` folders). Compute is counted
in generator steps actually trained (a trial stopped early counts the steps it ran), so the
figures do not depend on what else the machine was doing; seconds are given beside them.
A run failed by the lab report's rule (class KL > ln 2, a non-finite or blown-up FID) or by a
failing health status.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from steadygan.lab.report.aggregate import Run, final_value, load_runs, mean_std  # noqa: E402
from steadygan.lab.tune.study import failure  # noqa: E402

METRIC = "Metric/fid"
SEARCHES = ("grid", "tpe", "random")


def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.1f} ± {std:.1f}" if std is not None else f"{mean:.1f}"


def summarise(folder: Path) -> dict:
    runs = load_runs(folder)
    by_cell: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_cell[run.variant].append(run)
    search = [r for r in runs if r.seed == 0]
    finalists = [cell for cell, rs in by_cell.items() if len(rs) > 1]
    stopped = [r for r in search if r.status in ("failing", "pruned", "diverged")]
    out = {"cells": len(search), "steps": sum(r.last_step for r in search),
           "seconds": sum(r.last_seconds or 0.0 for r in search),
           "failing": [r for r in stopped if r.status == "failing"],
           "pruned": [r for r in stopped if r.status == "pruned"], "search": search, "finals": [],
           # ran to the budget and failed the report's rule there (tune sets such a trial aside)
           "failed": [r for r in search if r not in stopped and failure(r, METRIC, False)]}
    for cell in finalists:
        seeds = sorted(by_cell[cell], key=lambda r: r.seed)
        reasons = [failure(r, METRIC, False) for r in seeds]
        mean, std, _ = mean_std(final_value(r, METRIC) for r in seeds)
        out["finals"].append({"cell": cell, "seeds": len(seeds), "failed": sum(bool(x) for x in reasons),
                              "mean": mean, "std": std,
                              "extra_steps": sum(r.last_step for r in seeds if r.seed > 0)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("settings", nargs="+", type=Path, help="lab/tune/SETTING folders")
    args = p.parse_args()
    for setting in args.settings:
        rows = {name: summarise(setting / name) for name in SEARCHES if (setting / name).is_dir()}
        grid_steps = rows["grid"]["steps"] if "grid" in rows else None
        print(f"\n### {setting.name}\n")
        print("| search | cells trained | search compute (generator steps) | stopped: failing / pruned; "
              "failed at the budget "
              "| winner | failed (of seeds) | final FID, mean ± std | compute with finals |")
        print("|---|---|---|---|---|---|---|---|")
        for name, s in rows.items():
            share = f" ({s['steps'] / grid_steps:.0%} of the grid's)" if grid_steps else ""
            for f in s["finals"] or [{"cell": "-", "seeds": 0, "failed": 0, "mean": None, "std": None,
                                      "extra_steps": 0}]:
                print(f"| {name} | {s['cells']} | {s['steps']:,}{share}, {s['seconds'] / 60:.0f} min "
                      f"| {len(s['failing'])} / {len(s['pruned'])}; {len(s['failed'])} | {f['cell']} "
                      f"| {f['failed']}/{f['seeds']} "
                      f"| {_fmt(f['mean'], f['std'])} | {s['steps'] + f['extra_steps']:,} |")
        for kind, why in (("failing", "by its health status"), ("pruned", "by successive halving")):
            stops = [r for s in rows.values() for r in s[kind]]
            if not stops:
                continue
            steps = sorted(r.last_step for r in stops)
            secs = [r.last_seconds for r in stops if r.last_seconds is not None and math.isfinite(r.last_seconds)]
            print(f"\nA {kind} trial was stopped {why} after {steps[0]}-{steps[-1]} generator steps (median "
                  f"{steps[len(steps) // 2]}; {len(stops)} trials), {min(secs):.0f}-{max(secs):.0f} s of training.")
        if "grid" in rows:
            print("\nThe grid's cells at seed 0 (final FID; how each ended):\n")
            print("| cell | ended | at step | final FID | failure |")
            print("|---|---|---|---|---|")
            for r in sorted(rows["grid"]["search"], key=lambda r: (final_value(r, METRIC) or math.inf)):
                fid = final_value(r, METRIC)
                print(f"| {r.variant} | {r.status} | {r.last_step} | {'-' if fid is None else f'{fid:.1f}'} "
                      f"| {failure(r, METRIC, False) or ''} |")


if __name__ == "__main__":
    main()
