"""The 2-D mixture table of README.md / BENCHMARKS.md from a finished lab folder.

    python benchmarks/toy_table.py lab/ring8 lab/grid25

Per variant, over seeds: final modes recovered, % high-quality samples and KL(mode
histogram || uniform) as mean +- sample std, the runs that recovered every mode, and the
failures (diverged, or collapsed to at most one mode), using the report's own definitions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from steadygan.data import TOY_MIXTURES
from steadygan.lab.report import collapse_reason, divergence_reason, final_value, load_runs, mean_std, parse_metric
from steadygan.lab.report.aggregate import variants_in_order


def cell(values: list[float | None], scale: float = 1.0, digits: int = 3) -> str:
    mean, std, n = mean_std(v * scale if v is not None else None for v in values)
    if mean is None:
        return "–"
    return f"{mean:.{digits}g} ± {std:.2g}" if std is not None else f"{mean:.{digits}g}"


def table(lab: Path) -> str:
    runs = load_runs(lab)
    metric, higher = parse_metric("Metric/modes")
    n_modes = len(TOY_MIXTURES[runs[0].data_name][0]())
    lines = [f"**{lab.name}** ({n_modes} modes, {len(runs)} runs, "
             f"steps {max(r.last_step for r in runs)})", "",
             "| variant | modes | high-quality % | KL | all modes | diverged | collapsed |",
             "|---|---|---|---|---|---|---|"]
    for variant in variants_in_order(runs):
        group = [r for r in runs if r.variant == variant]
        modes = [final_value(r, "Metric/modes") for r in group]
        hq = [final_value(r, "Metric/hq") for r in group]
        kl = [final_value(r, "Metric/kl") for r in group]
        full = sum(m == n_modes for m in modes if m is not None)
        diverged = sum(divergence_reason(r, metric, higher) is not None for r in group)
        collapsed = sum(collapse_reason(r) is not None for r in group)
        k = len(group)
        lines.append(f"| {variant} | {cell(modes)} | {cell(hq, 100)} | {cell(kl)} | {full}/{k} | "
                     f"{diverged}/{k} | {collapsed}/{k} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labs", nargs="+", type=Path, help="lab folders written by `steadygan compare`")
    for lab in parser.parse_args().labs:
        print(table(lab), end="\n\n")


if __name__ == "__main__":
    main()
