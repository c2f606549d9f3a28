"""Command line for the stability lab: ``steadygan compare`` and ``steadygan report``.

Kept apart from ``cli.py``, which wires these in with ``add_compare_parser(sub)`` and
``add_report_parser(sub)``; both set ``func`` so ``cli.main`` dispatches them like its own.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

COMPARE_EXAMPLES = """\
examples:
  steadygan compare --config configs/ring8.yaml --variants baseline r1:gamma=10 clip-value:eps=0.01 \\
      --seeds 5 --steps 2000 -o lab/ring8
  steadygan compare --config configs/ring8.yaml --variants baseline wgan-gp weight-clip \\
      --seeds 3 --time 60 --jobs 2 -o lab/wgan
  steadygan compare --config configs/demo-fashion-mnist.yaml --variants baseline r1:gamma=1,every=16 \\
      agc:clipping=0.02 "clip-norm:max=1,label=norm 1" --seed-list 0 7 --steps 3000 -o lab/fmnist
  steadygan compare ... same arguments again ...   # skips finished runs, resumes interrupted ones
  steadygan compare ... --variants baseline r1:gamma=10 r2 --extend   # adds r2 to the same lab

variants (NAME[:key=value,...], several joined with + to combine):
  baseline                    the base config unchanged
  r1 r2 zero-gp dragan        input-gradient penalties on D (gamma / lambda / weight, every)
  wgan-gp                     on D, and sets loss=wasserstein (n_critic, betas: from the config)
  seed-param consensus        on both D and G (lambda / gamma, every)
  nk                          on G (eta, every)
  clip-value:eps=  clip-norm:max_norm= (or max=)  agc:clipping=    gradient clippers on D and G
  weight-clip:c=              WGAN weight clipping on D, and sets loss=wasserstein
  any part may add label=TEXT: the name shown in the report and used for run directories

Each (variant, seed) pair is an ordinary run directory OUT/runs/<variant>-s<seed>/ (resume one
by hand with `steadygan train --resume`). OUT/compare.yaml fixes the lab's plan: the same
command again resumes it; other arguments are refused before anything is created or trained,
except new variants, new seeds or a larger budget with --extend. Runs that diverge are recorded
and the compare goes on. The report (OUT/report/report.md and report.html) is written at the end.
"""

REPORT_EXAMPLES = """\
examples:
  steadygan report lab/ring8
  steadygan report lab/ring8 --metric Metric/modes --threshold 7
  steadygan report lab/fmnist --metric fid --threshold 60
  steadygan report lab/x --metric Metric/custom:max   # a metric the report does not know: give its direction

The main metric defaults to Metric/fid when runs recorded it, else Metric/modes; without any
Metric/* rows the report covers losses, gradients, step time and divergence only. For
Metric/modes on ring8/grid25 the threshold defaults to all modes recovered.
"""


def add_compare_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", help="train several stabilisers over several seeds and report which works best",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=COMPARE_EXAMPLES,
        description="Train every (variant, seed) pair on one base config, resumably, then write a report "
                    "comparing final quality, time to quality, divergence, mode collapse and step cost.")
    p.add_argument("--config", "-c", type=Path, help="base YAML config (see configs/); defaults for missing keys")
    p.add_argument("--variants", "-v", nargs="+", required=True, metavar="SPEC",
                   help="variant specs, e.g. baseline r1:gamma=10 clip-value:eps=0.01 (see below)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 per variant (default 3)")
    seeds.add_argument("--seed-list", type=int, nargs="+", metavar="SEED", help="explicit seeds instead of --seeds")
    p.add_argument("--steps", type=int, help="generator steps per run (default: the config's train.steps)")
    p.add_argument("--time", type=float, metavar="SECONDS",
                   help="training-time budget per run in seconds (evaluation time excluded); a run stops at "
                        "whichever budget comes first")
    p.add_argument("--set", "-s", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override base config keys for every variant, e.g. --set data.batch_size=64 model.width=32")
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="runs trained at once, each in its own process with the CPU threads split (default 1)")
    p.add_argument("--out", "-o", type=Path, required=True,
                   help="lab folder (created; the same arguments again resume it, other ones are refused)")
    p.add_argument("--extend", action="store_true",
                   help="add new variants or seeds to an existing lab folder's plan, or raise its step or time "
                        "budget (finished runs then continue to it); nothing else may change")
    _add_report_options(p)
    p.add_argument("--no-progress", action="store_true", help="no per-run progress bar")
    p.set_defaults(func=cmd_compare)
    return p


def cmd_compare(args: argparse.Namespace) -> int:
    from ..lab.compare import run_compare

    progress = not args.no_progress and sys.stderr.isatty()
    try:
        report = run_compare(args.config, args.set, args.variants, args.seed_list or args.seeds, args.steps,
                             args.time, args.out, jobs=args.jobs, progress=progress, main_metric=args.metric,
                             threshold=args.threshold, extend=args.extend)
    except KeyboardInterrupt as exc:  # the runs in progress checkpointed first (Interrupted carries the signal)
        print(f"\ncompare interrupted; run the same command again to resume ({args.out})", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)
    _print_report_paths(report)
    return 0


def add_report_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report", help="(re)write the report of a `steadygan compare` folder",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=REPORT_EXAMPLES,
        description="Aggregate the runs of a lab folder into report/report.md, a self-contained "
                    "report/report.html and PNG plots. Works on a compare that is still running or was interrupted.")
    p.add_argument("lab_dir", type=Path, help="the folder given to `steadygan compare -o`")
    _add_report_options(p)
    p.set_defaults(func=cmd_report)
    return p


def _add_report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metric", help="main metric of the report, e.g. Metric/fid or Metric/modes (default: "
                                    "Metric/fid, else Metric/modes; append :max or :min for metrics without a "
                                    "known direction)")
    p.add_argument("--threshold", type=float, help="quality threshold for time-to-quality")


def cmd_report(args: argparse.Namespace) -> int:
    from ..lab.report import write_report

    _print_report_paths(write_report(args.lab_dir, main_metric=args.metric, threshold=args.threshold))
    return 0


def _print_report_paths(report: Path) -> None:
    print(f"report: {report}")
    print(f"        {report.with_suffix('.html')} (self-contained)")
