"""``steadygan tune``: find the stabiliser and strength for a config's data (``steadygan.lab.tune``)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

TUNE_EXAMPLES = """\
examples:
  steadygan tune -c configs/ring8.yaml --space documents --steps 600 --trials 4 --finalists 2 \\
      --seeds 2 -o tune/ring8                          # a few minutes on 2 cores
  steadygan tune -c configs/baseline.yaml --space penalties --steps 1000 -o tune/fmnist
  steadygan tune -c my.yaml --space my-space.yaml --time 300 --sampler grid -o tune/grid
  steadygan tune ... same arguments again ...           # resumes: no trial is lost or run twice
  STEADYGAN_TUNE_DB_PASSWORD=... steadygan tune ... --storage postgresql://tuner@dbhost/studies -o tune/x
                                                        # on each machine: one study, shared

spaces (--space): default (the plain GAN, every penalty and clipper at 0.1x, 1x and 10x its
paper's strength), penalties, clippers, documents (GP-GAN's penalty and GC-GAN's value clipping
against R1 and the plain GAN), or a YAML file:
  methods: {baseline: {}, r1: {gamma: [1, 10]}, clip-value: {eps: [0.01, 0.1]}}
  lr: [0.0001, 0.0002]        # optional
  beta1: [0.0, 0.5]           # optional

Search: trials train cells at seed 0 to the budget, report the main metric at each evaluation
(every fifth of the budget unless the config sets train.eval_every), and are pruned early by
successive halving (or Hyperband), or stopped at once when their health status fails. Finals:
the best --finalists cells on --seeds seeds at the full budget; a cell that failed on any seed
ranks after all that did not. OUT/best.yaml is the winner's config (`steadygan train -c
OUT/best.yaml`); OUT/report/ the report. Several `tune` processes on one storage share the
study; `optuna-dashboard sqlite:///OUT/study.db` shows it in a browser."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "tune", help="find the stabiliser and strength that work on your config and data",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TUNE_EXAMPLES,
        description="Search stabilisers x strengths on a config with Optuna (pruning poor and failing trials "
                    "early), train the best few on several seeds, and write the winner's config and a report.")
    p.add_argument("--config", "-c", type=Path, help="base YAML config (see configs/)")
    p.add_argument("--set", "-s", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override base config keys, e.g. --set data.batch_size=64")
    p.add_argument("--space", default="default", help="a named space or a YAML file (below; default: default)")
    p.add_argument("--steps", type=int, help="generator steps per trial (the full budget)")
    p.add_argument("--time", type=float, metavar="SECONDS", help="or training seconds per trial")
    p.add_argument("--trials", type=int, help="search trials (default: a third of the space's cells, at least 4; "
                                              "the grid sampler tries every cell)")
    p.add_argument("--finalists", type=int, default=3, help="cells trained on every seed at the end (default 3)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per finalist (default 3)")
    p.add_argument("--sampler", choices=("tpe", "grid", "random"), default="tpe",
                   help="tpe (default: Optuna's tree-structured Parzen estimator), grid (every cell) or random")
    p.add_argument("--pruner", choices=("sha", "hyperband", "none"), default="sha",
                   help="early stopping of poor trials: successive halving (default), Hyperband, or none")
    p.add_argument("--metric", help="main metric (default Metric/fid on images, Metric/modes on 2-D data; "
                                    "append :max or :min for one the report does not know)")
    p.add_argument("--storage", metavar="URL", help="a database shared by several machines, e.g. "
                                                    "postgresql://user@host/db (password: $STEADYGAN_TUNE_DB_PASSWORD)")
    p.add_argument("--out", "-o", type=Path, required=True, help="tune folder (the same arguments again resume it)")
    p.add_argument("--extend", action="store_true", help="raise the number of search trials of an existing folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_tune)
    return p


def cmd_tune(args: argparse.Namespace) -> int:
    from ..lab.tune import TuneRequest, run_tune

    request = TuneRequest(str(args.config) if args.config else None, tuple(args.set), args.space, args.steps,
                          args.time, args.trials, args.finalists, args.seeds, args.sampler, args.pruner,
                          args.metric, args.storage)
    try:
        best, report = run_tune(request, args.out, extend=args.extend)
    except KeyboardInterrupt as exc:  # the trial in progress checkpointed first
        print(f"\ntune interrupted; run the same command again to resume ({args.out})", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)
    print(f"best config: {best}   (steadygan train -c {best})")
    print(f"report: {report}")
    print(f"        {report.with_suffix('.html')} (self-contained)")
    return 0
