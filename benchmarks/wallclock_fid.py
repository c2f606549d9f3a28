"""FID against wall-clock seconds: the hand-written loop and steadygan on the same networks and data.

The user's view of speed: not milliseconds per iteration but how good the samples are after a
given number of seconds. For each pair of `hand_loop.py` and each seed, the hand loop,
steadygan's default step and steadygan with ``train.share_fake=true`` train the same initial
networks on Fashion-MNIST (at the pair's resolution, 28 or 32 px) for ``--seconds`` of step
time each. At ``--marks`` evenly spaced moments each run's generator is copied aside (the copy
is not timed); afterwards every copy is scored with steadygan's evaluator: FID of ``--n``
samples (eval mode, noise seeded alike) against the train split, in the features of the
classifier trained on the data at that resolution (trained once and cached).

Contenders run one after another, in a rotating order per seed, on an otherwise idle machine:
seconds are only comparable when nothing else runs. Prints a markdown table: per pair and
contender, FID (mean ± std over seeds) at each mark, and the steps each reached.

    python benchmarks/wallclock_fid.py                                  # every pair, 3 seeds, 120 s
    python benchmarks/wallclock_fid.py --arch dcgan28 --seconds 300 --marks 5 --seeds 3
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from datetime import date

import torch
from hand_loop import ARCHS, Z_DIM, HandLoop, make_pair, steadygan_trainer

from steadygan.core.sampler import NetworkSampler
from steadygan.data import load_dataset
from steadygan.metrics.evaluate import Evaluator
from steadygan.models import GanPair

CONTENDERS = ("hand loop", "steadygan", "+ share_fake")


def train_for(step, generator: torch.nn.Module, seconds: float, marks: int) -> list[tuple[float, int, dict]]:
    """Run ``step`` until ``seconds`` of its own time have passed; at each of ``marks`` evenly
    spaced moments keep (seconds, steps, a copy of G's weights). Copying is not timed."""
    kept, elapsed, steps = [], 0.0, 0
    while len(kept) < marks:
        t0 = time.perf_counter()
        step()
        elapsed += time.perf_counter() - t0
        steps += 1
        if elapsed >= seconds * (len(kept) + 1) / marks:
            kept.append((elapsed, steps, copy.deepcopy(generator.state_dict())))
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--seconds", type=float, default=120.0, help="step time per run")
    parser.add_argument("--marks", type=int, default=4, help="moments at which G is kept and scored")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--n", type=int, default=2000, help="samples per FID")
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: Debian's)")
    args = parser.parse_args()
    if args.seconds <= 0 or args.marks < 1 or args.seeds < 1 or args.n < 2:
        parser.error("--seconds must be > 0, --marks and --seeds >= 1, --n >= 2")
    print(f"{date.today()}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.seconds:g} s of step time per run, {args.seeds} seeds, FID on {args.n} samples")
    marks = [f"{args.seconds * (k + 1) / args.marks:g} s" for k in range(args.marks)]
    print("\n| pair | contender | " + " | ".join(f"FID at {m}" for m in marks) + " | steps at the end |")
    print("|---" * (3 + args.marks) + "|")
    for arch in args.arch:
        _, shape = make_pair(arch)
        images = load_dataset("fashion-mnist", args.data_dir, "train", shape[-1], shape[0]).samples
        evaluator = Evaluator("fashion-mnist", args.data_dir, resolution=shape[-1], channels=shape[0],
                              metrics=("fid",), n=args.n)
        fids: dict[str, list[list[float]]] = {c: [] for c in CONTENDERS}
        steps: dict[str, list[int]] = {c: [] for c in CONTENDERS}
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            initial, _ = make_pair(arch)
            first = seed % len(CONTENDERS)  # rotated: no contender always runs first
            order = CONTENDERS[first:] + CONTENDERS[:first]
            for name in order:
                pair = GanPair(copy.deepcopy(initial.generator), copy.deepcopy(initial.discriminator))
                torch.manual_seed(1000 + seed)
                if name == "hand loop":
                    step = HandLoop(pair, images, args.batch).iteration
                else:
                    extra = [f"train.seed={seed}"] + (["train.share_fake=true"] if name == "+ share_fake" else [])
                    step = steadygan_trainer(pair, images, args.batch, extra)._one_step
                kept = train_for(step, pair.generator, args.seconds, args.marks)
                scores = []
                for _, _, weights in kept:
                    generator = copy.deepcopy(initial.generator)
                    generator.load_state_dict(weights)
                    scores.append(evaluator.evaluate(NetworkSampler(generator.eval(), Z_DIM))["metrics"]["fid"])
                fids[name].append(scores)
                steps[name].append(kept[-1][1])
        for name in CONTENDERS:
            cells = []
            for k in range(args.marks):
                values = [run[k] for run in fids[name]]
                spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
                cells.append(f"{statistics.mean(values):.1f}{spread}")
            print(f"| {arch} | {name} | " + " | ".join(cells) + f" | {statistics.mean(steps[name]):.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
