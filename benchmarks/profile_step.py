"""Where one training iteration's time goes: the hand loop and steadygan's step under torch.profiler.

For each pair of `hand_loop.py` (the same networks, data and contenders), profiles ``--iters``
iterations of each contender after a warm-up and groups the operators' self CPU time into
kinds: convolution and matmul (the arithmetic the FLOP counts are about), BatchNorm,
activations, upsampling, dropout, the optimiser's and the EMA's multi-tensor updates, layout
copies, reductions (the losses and logged statistics), random draws, and the rest. Prints a markdown table of
milliseconds per iteration for each kind, and the largest single operators outside the
arithmetic: what is left to take once the convolutions run as fast as they can.

    python benchmarks/profile_step.py                          # every pair, batch 64, CPU
    python benchmarks/profile_step.py --arch published32 --iters 20 --top 12
"""

from __future__ import annotations

import argparse
import copy
from collections import defaultdict

import torch
from hand_loop import ARCHS, PLAIN_STEP, HandLoop, make_pair, steadygan_trainer
from torch.profiler import ProfilerActivity, profile

from steadygan.models import GanPair

# Operator name fragments -> kind; the first match wins (so "convolution_backward" is arithmetic).
KINDS = [
    ("arithmetic", ("convolution", "conv2d", "mkldnn_conv", "addmm", "aten::mm", "aten::bmm", "matmul", "linear")),
    ("BatchNorm", ("batch_norm",)),
    ("activations", ("leaky_relu", "tanh", "sigmoid", "relu", "threshold")),
    ("upsampling", ("upsample",)),
    ("dropout", ("dropout", "bernoulli", "feature_dropout")),
    ("optimiser and EMA", ("_foreach", "adam", "lerp")),
    ("layout copies", ("copy_", "contiguous", "clone", "to_copy", "aten::to", "empty_strided", "as_strided")),
    ("reductions", ("aten::sum", "aten::mean", "norm", "binary_cross_entropy", "softplus", "log_sigmoid")),
    ("random draws", ("randn", "randint", "normal_", "uniform_", "random_")),
]


def kind_of(name: str) -> str:
    lowered = name.lower()
    for kind, fragments in KINDS:
        if any(f in lowered for f in fragments):
            return kind
    return "other"


def profile_ms(fn, iters: int) -> tuple[float, dict[str, float], list[tuple[str, float]]]:
    """Wall ms per iteration, self CPU ms per iteration of each kind, and of each operator."""
    import time

    for _ in range(3):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        wall = (time.perf_counter() - t0) / iters * 1e3
    by_kind: dict[str, float] = defaultdict(float)
    ops = []
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1e3 / iters
        by_kind[kind_of(event.key)] += ms
        ops.append((event.key, ms))
    return wall, by_kind, sorted(ops, key=lambda o: -o[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--top", type=int, default=8, help="largest non-arithmetic operators listed per contender")
    args = parser.parse_args()
    kinds = [k for k, _ in KINDS] + ["other"]
    contenders = {"hand loop": None, "steadygan": [], "+ share_fake": ["train.share_fake=true"],
                  "plain step": PLAIN_STEP}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.iters} profiled iterations; self CPU ms per iteration (profiler overhead included)\n")
    print("| pair | contender | wall ms/it | " + " | ".join(kinds) + " |")
    print("|---" * (3 + len(kinds)) + "|")
    tops = []
    for arch in args.arch:
        torch.manual_seed(0)
        pair, shape = make_pair(arch)
        images = torch.randint(0, 256, (4096, *shape), dtype=torch.uint8)
        for name, extra in contenders.items():
            copied = GanPair(copy.deepcopy(pair.generator), copy.deepcopy(pair.discriminator))
            fn = (HandLoop(copied, images, args.batch).iteration if extra is None
                  else steadygan_trainer(copied, images, args.batch, extra)._one_step)
            wall, by_kind, ops = profile_ms(fn, args.iters)
            print(f"| {arch} | {name} | {wall:.1f} | " + " | ".join(f"{by_kind.get(k, 0.0):.1f}" for k in kinds)
                  + " |", flush=True)
            outside = [(op, ms) for op, ms in ops if kind_of(op) != "arithmetic"][:args.top]
            tops.append(f"{arch}, {name}: " + ", ".join(f"{op} {ms:.2f}" for op, ms in outside))
    print("\nLargest operators outside the arithmetic (self CPU ms per iteration):\n")
    for line in tops:
        print(f"- {line}")


if __name__ == "__main__":
    main()
