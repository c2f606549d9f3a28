"""The heal table: runs that heal themselves (train.on_failure=heal) against fixed ones, from
lab folders written by `benchmarks/lab.sh heal-table` (and the folders it is compared with).

    python benchmarks/heal_table.py lab/failure-search/heal-lr-5e-2 lab/failure-search/heal-default ...

Per folder and variant: failed runs (the lab report's rule at the end), the final main metric
(mean ± std over seeds), how many runs were intervened on and with how many remedies, and the
training time lost to rollbacks (the steps redone after each, at the run's median step time) as
a share of the run's training time.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from steadygan.lab.report.aggregate import (  # noqa: E402
    collapse_reason,
    divergence_reason,
    final_value,
    load_runs,
    step_time,
)
from steadygan.training.recovery import read_history  # noqa: E402


def main() -> int:
    print("| folder | variant | failed | final FID or modes (mean ± std) | runs healed | remedies"
          " | time lost to rollbacks |")
    print("|---|---|---|---|---|---|---|")
    for folder in map(Path, sys.argv[1:]):
        runs = load_runs(folder)
        metric = "Metric/fid" if any("Metric/fid" in r for run in runs for r in run.eval_rows) else "Metric/modes"
        higher = metric == "Metric/modes"
        for variant in dict.fromkeys(r.variant for r in runs):
            of = [r for r in runs if r.variant == variant and r.marker is not None]
            failed = sum(bool(divergence_reason(r, metric, higher) or collapse_reason(r)
                              or (r.marker or {}).get("stopped") == "failing") for r in of)
            finals = [v for v in (final_value(r, metric) for r in of) if v is not None]
            histories = [read_history(r.run_dir) for r in of]
            lost = []
            for run, history in zip(of, histories):
                per_step, total = step_time(run), run.last_seconds
                redone = sum(h["failed_at"] - h["step"] for h in history)
                if per_step and total:
                    lost.append(redone * per_step / total)
            mean = f"{statistics.fmean(finals):.1f}" if finals else "–"
            spread = f" ± {statistics.stdev(finals):.1f}" if len(finals) > 1 else ""
            share = f"{statistics.fmean(lost):.1%} (max {max(lost):.1%})" if lost else "–"
            print(f"| {folder.name} | {variant} | {failed}/{len(of)} | {mean}{spread} | "
                  f"{sum(bool(h) for h in histories)}/{len(of)} | {sum(len(h) for h in histories)} | {share} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
