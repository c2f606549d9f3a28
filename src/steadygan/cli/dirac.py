"""``steadygan dirac``: each method on the Dirac-GAN, and whether it converges (``steadygan.lab.dirac``)."""

from __future__ import annotations

import argparse
import math
import textwrap
from typing import Any, Callable

from ..lab.dirac import DEFAULT_LR, DEFAULT_STEPS, DIRAC_METHODS, START, TOLERANCE, run_dirac


def _methods_arg(text: str) -> list[str]:
    if text.strip() == "all":
        return list(DIRAC_METHODS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in DIRAC_METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown method {', '.join(repr(u) for u in unknown) or '(none given)'}; "
            f"choose from: {', '.join(DIRAC_METHODS)} (comma-separated) or all")
    return names


def _positive(cast: type) -> Callable[[str], Any]:
    """An argparse type: a finite number > 0 (an integer >= 1 when ``cast`` is int)."""
    noun, rule = ("an integer", ">= 1") if cast is int else ("a number", "a finite number > 0")

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {rule} (got {text})")
        return value

    return parse


def _dirac_epilog() -> str:
    width = max(len(n) for n in DIRAC_METHODS)
    lines = ["methods:"] + [f"  {n:<{width}}  {m['summary']}" for n, m in DIRAC_METHODS.items()]
    lines += ["",
              "examples:",
              "  steadygan dirac                                   # every method, 500 steps, h = 0.1",
              "  steadygan dirac --methods plain,r1-1,value-clip -o runs/dirac",
              "  steadygan dirac --steps 5000 --lr 0.05 --methods wgan,wgan-gp",
              "",
              "Data is a point mass at 0, G(z) = theta, D(x) = psi * x; the equilibrium is (0, 0).",
              f"A method 'converged' when its final distance to (0, 0) is below --tol (default {TOLERANCE:g}).",
              "Every update goes through the trainer's own d_step/g_step, losses, penalties and clippers."]
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``steadygan dirac`` on ``subparsers`` (the CLI's ``add_subparsers()`` object)."""
    p = subparsers.add_parser(
        "dirac", help="simulate each method on the Dirac-GAN and plot whether it converges",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_dirac_epilog(),
        description=textwrap.fill(
            "Run alternating SGD on the Dirac-GAN of Mescheder et al. 2018 (a 2-parameter GAN whose only "
            "equilibrium is (0, 0)) for each method, and write dirac.png (trajectories and distance to "
            "equilibrium) and dirac.json (final distance, converged?).", 88))
    p.add_argument("--steps", type=_positive(int), default=DEFAULT_STEPS,
                   help=f"D+G update pairs per method (default {DEFAULT_STEPS})")
    p.add_argument("--lr", type=_positive(float), default=DEFAULT_LR,
                   help=f"SGD step size h for both players (default {DEFAULT_LR:g})")
    p.add_argument("--methods", type=_methods_arg, default=list(DIRAC_METHODS), metavar="NAME[,NAME...]",
                   help="comma-separated methods from the list below, or 'all' (default all)")
    p.add_argument("--start", type=float, nargs=2, default=list(START), metavar=("THETA", "PSI"),
                   help="initial (theta, psi) (default 1 1)")
    p.add_argument("--tol", type=_positive(float), default=TOLERANCE,
                   help=f"distance below which a run counts as converged (default {TOLERANCE:g})")
    p.add_argument("-o", "--out-dir", default="runs/dirac",
                   help="folder for dirac.png and dirac.json (default runs/dirac)")
    p.set_defaults(func=cmd_dirac)
    return p


def cmd_dirac(args: argparse.Namespace) -> int:
    result = run_dirac(args.out_dir, steps=args.steps, lr=args.lr, methods=args.methods,
                       start=getattr(args, "start", START), tol=getattr(args, "tol", TOLERANCE))
    s = result["settings"]
    print(f"Dirac-GAN: {s['steps']} steps of alternating SGD, h = {s['lr']:g}, "
          f"start ({s['start'][0]:g}, {s['start'][1]:g}), tolerance {s['tolerance']:g}")
    width = max(len("method"), *(len(n) for n in result["methods"]))

    def num(x: float | None) -> str:
        return "nan/inf" if x is None else f"{x:.3g}"

    print(f"{'method':<{width}}  {'final dist':>10}  {'min dist':>10}  {'converged':>9}  verdict")
    for name, r in result["methods"].items():
        print(f"{name:<{width}}  {num(r['final_distance']):>10}  {num(r['min_distance']):>10}  "
              f"{'yes' if r['converged'] else 'no':>9}  {r['verdict']}")
    print(f"plot: {result['files']['png']}")
    print(f"summary: {result['files']['json']}")
    return 0
