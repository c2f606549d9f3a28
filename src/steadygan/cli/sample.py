"""``steadygan sample``: a trained run's sample picture (a grid, one row per class, or a 2-D scatter)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..errors import ConfigError
from .common import (
    add_checkpoint_flags,
    add_class_flag,
    add_output_flag,
    add_scale_flag,
    add_seed_flag,
    check_at_least_one,
    check_class,
)

SAMPLE_EXAMPLES = """\
examples:
  steadygan sample runs/00000-demo -n 64 -o grid.png
  steadygan sample runs/00001-conditional -o classes.png       # one row per class
  steadygan sample runs/00001-conditional --class 3 -n 16 -o threes.png
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("sample", help="write a grid of samples from a trained run",
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SAMPLE_EXAMPLES)
    p.add_argument("run_dir", help="a run directory written by `steadygan train`")
    p.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    add_output_flag(p, "samples.png", "output PNG")
    add_checkpoint_flags(p, "use the raw generator even if the run kept an EMA")
    add_seed_flag(p, "noise seed")
    add_scale_flag(p, "the grid")
    add_class_flag(p, "draw every sample of class K (default: a grid with one row per class)")
    p.set_defaults(func=cmd_sample)
    return p


def cmd_sample(args: argparse.Namespace) -> int:
    from ..apps.pictures import class_rows, save_samples
    from ..training.sampling import load_generator

    if args.n < 1:
        raise ConfigError(f"-n must be >= 1 (got {args.n})")
    check_at_least_one(scale=args.scale)
    loaded = load_generator(args.run_dir, args.checkpoint, use_ema=not args.raw)
    k, n, nrow, labels, what = loaded.num_classes, args.n, None, None, f"{args.n} samples"
    check_class(args.cls, loaded, args.run_dir)
    if args.cls is not None:
        labels, what = torch.full((n,), args.cls), f"{n} samples of class {args.cls}"
    elif loaded.conditional:
        nrow, labels = class_rows(n, k)
        n, what = len(labels), f"{k} classes x {nrow} samples, one row per class"
    fake = loaded.sample(n, seed=args.seed, labels=labels)
    out = Path(args.output)
    save_samples(fake, out, loaded.info, nrow, scale=args.scale, title=f"{Path(args.run_dir).name} step {loaded.step}")
    print(f"wrote {out} ({what} from {loaded.checkpoint.name}, {'EMA' if loaded.ema else 'raw'} generator)")
    return 0
