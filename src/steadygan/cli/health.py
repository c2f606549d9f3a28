"""``steadygan health RUN``: when a run went wrong, which signal said so first, and a picture of it."""

from __future__ import annotations

import argparse
from pathlib import Path

CHECK_EXIT = {"healthy": 0, "warning": 1, "failing": 3}  # 2 stays "bad argument", as in every command

HEALTH_EPILOG = """\
examples:
  steadygan health runs/mnist                # the status changes in words, and runs/mnist/health.png
  steadygan health runs/mnist -o h.png       # the picture elsewhere
  steadygan health lab/x/runs/plain-s0 --no-plot

The status is the one `train` shows beside the losses (train.health_every, train.on_failure):
healthy, warning or failing, each with the signal that said so. It is read from the run's
stats.jsonl, so it works on a run that is still training, one that stopped, and one trained
before the probe existed (judged on the losses, D's logits and evaluations it logged).
With --check the exit status is the status now: 0 healthy, 1 warning, 3 failing (as `train`
exits when train.on_failure=stop ends a failing run); 2 is a bad argument, as everywhere."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "health", help="a run's health history: the first warning, the failure, and a plot",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=HEALTH_EPILOG,
        description="Read a run's stats.jsonl, apply the health status to its rows in order and print every "
                    "change of status; draw the signals beside the run's samples at those steps.")
    p.add_argument("run_dir", type=Path, help="a run directory (train -o)")
    p.add_argument("-o", "--out", type=Path, help="where to write the plot (default: RUN/health.png)")
    p.add_argument("--no-plot", action="store_true", help="print only")
    p.add_argument("--check", action="store_true", help="exit 1 when the run's status is warning, 3 when failing")
    p.set_defaults(func=cmd_health)
    return p


def cmd_health(args: argparse.Namespace) -> int:
    from ..lab.report.health import describe, plot_health, run_health

    health = run_health(args.run_dir)
    print(describe(health))
    if not args.no_plot:
        out = args.out or args.run_dir / "health.png"
        print(f"plot: {plot_health(health, out)}")
    return CHECK_EXIT[health.judge.status.level] if args.check else 0
