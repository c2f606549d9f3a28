"""Score the health status on a corpus of lab runs: which runs it flags, how early, and how
often it flags a healthy one (steadygan.lab.health_eval).

    python benchmarks/health_eval.py lab/health-corpus           # after `benchmarks/lab.sh health-corpus`
    python benchmarks/health_eval.py lab/health-corpus --fit     # + thresholds fitted on one failing
                                                                 #   setting, scored on the other

The report's rule is applied at each evaluation every 250 steps and, separately, every 100
(the corpus evaluates every 50, which serves both); the ratio is the rule's flag step over the report's.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from steadygan.lab.health_eval import (  # noqa: E402
    GRID,
    CorpusRun,
    Score,
    fit_rule,
    load_corpus,
    score,
    signal_rules,
    wilson,
)
from steadygan.training.health import HealthMonitor, HealthRule  # noqa: E402


def share(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} ({lo:.2f}-{hi:.2f})" if n else "-"


def row(name: str, s: Score) -> str:
    ratio = f"{s.median_ratio:.2f}" if not math.isnan(s.median_ratio) else "-"
    early = sum(r <= 0.5 for r in s.ratios)
    return (f"| {name} | {share(s.flagged_failed, s.failed)} | {ratio} | {early}/{len(s.ratios)} | "
            f"{share(s.flagged_healthy, s.healthy)} |")


HEADER = ("| rule | failed runs flagged (95% CI) | median step / report's step | flagged at half the report's "
          "step or sooner | healthy runs flagged (95% CI) |\n|---|---|---|---|---|")


def describe(rule: HealthRule) -> str:
    return (f"low_diversity={rule.low_diversity}, collapse_probes={rule.collapse_probes}, "
            f"class_kl_probes={rule.class_kl_probes}, d_wins={rule.d_wins}, warm_up={rule.warm_up}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--fit", action="store_true", help="also fit on one failing setting, test on another")
    parser.add_argument("--max-false-alarms", type=float, default=0.05, metavar="SHARE",
                        help="the fit's budget of healthy runs flagged, on its half of them (default 0.05)")
    args = parser.parse_args()
    for every in (250, 100):
        # The corpus probed the classes at every probe (50 steps); the monitor reads them at
        # every other one: scored as it would have been logged.
        runs = load_corpus(args.corpus, every, class_every=50 * HealthMonitor.CLASS_PROBES)
        kinds = sorted({r.kind for r in runs})
        print(f"\n## evaluations every {every} steps: {len(runs)} runs, {sum(r.failed for r in runs)} failed")
        for kind in kinds:
            of = [r for r in runs if r.kind == kind]
            print(f"- {kind}: {len(of)} runs, {sum(r.failed for r in of)} failed")
        print("\n" + HEADER)
        for name, rule in signal_rules().items():
            print(row(name, score(runs, rule, every)))
        print("\nthe trade-off: the default rule at each warm-up of the grid\n\n" + HEADER)
        for warm_up in GRID["warm_up"]:
            print(row(f"warm-up {warm_up}", score(runs, dataclasses.replace(HealthRule(), warm_up=warm_up), every)))
        if args.fit:
            fitted_both_ways(runs, every, args.max_false_alarms)
    return 0


def fitted_both_ways(runs: list[CorpusRun], every: int, max_false_alarms: float) -> None:
    """Fit on the failed runs of one kind (and the even-seeded healthy runs), score on the failed
    runs of the other kinds (and the odd-seeded healthy runs)."""
    failing_kinds = sorted({r.kind for r in runs if r.failed})
    healthy = [r for r in runs if not r.failed]
    print("\nfitted on one failing kind, scored on the others (held out):\n\n" + HEADER)
    for kind in failing_kinds:
        fit_on = [r for r in runs if r.failed and r.kind == kind] + [r for r in healthy if r.run.seed % 2 == 0]
        test_on = [r for r in runs if r.failed and r.kind != kind] + [r for r in healthy if r.run.seed % 2 == 1]
        rule = fit_rule(fit_on, every, max_false_alarms)
        if rule is None:
            print(f"| fitted on {kind}: no rule of the grid flags at most {max_false_alarms:.0%} of the healthy runs "
                  "| | | | |")
            continue
        print(row(f"fitted on {kind} ({describe(rule)})", score(test_on, rule, every)))


if __name__ == "__main__":
    sys.exit(main())
