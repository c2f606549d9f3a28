"""Training-step cost of each stabiliser relative to the plain GAN, measured interleaved.

Every method gets its own Trainer (same model, data, batch); the script then runs rounds
in which each method trains `--steps` steps in turn, so slow drifts of a noisy machine hit
all methods alike. Reported: median seconds per step over rounds, steps/s, and the ratio
to the baseline within the same run.

    python benchmarks/step_speed.py                          # DCGAN-28, batch 64, CPU
    python benchmarks/step_speed.py --methods none r1 wgan-gp value --rounds 7
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date

import torch

from steadygan.data import InMemoryData
from steadygan.training.build import load_config
from steadygan.training.trainer import Trainer

# name -> config overrides
METHODS = {
    "none": [],
    "r1": ["d.penalties=[r1:gamma=10]"],
    "r1-lazy16": ["d.penalties=[r1:gamma=10,every=16]"],
    "r2": ["d.penalties=[r2:gamma=10]"],
    "wgan-gp": ["loss=wasserstein", "d.penalties=[wgan-gp]"],
    "zero-gp": ["d.penalties=[zero-gp]"],
    "dragan": ["d.penalties=[dragan]"],
    "seed-param": ["d.penalties=[seed-param:lambda=0.1]", "g.penalties=[seed-param:lambda=0.1]"],
    "consensus": ["d.penalties=[consensus]", "g.penalties=[consensus]"],
    "nk": ["g.penalties=[nk]"],
    "value": ["d.clip=value:eps=0.01", "g.clip=value:eps=0.01"],
    "norm": ["d.clip=norm:max_norm=1", "g.clip=norm:max_norm=1"],
    "agc": ["d.clip=agc", "g.clip=agc"],
    "weight-clip": ["loss=wasserstein", "d.clip=weight-clip"],
}
# The step before the fast step (one G forward per update, NCHW, two D forwards), for the
# gain in the same run.
PLAIN_STEP = ["train.share_fake=false", "train.channels_last=false", "train.fused_d_forward=false"]
METHODS["none-plain-step"] = PLAIN_STEP
METHODS["seed-param-plain-step"] = METHODS["seed-param"] + PLAIN_STEP


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--steps", type=int, default=20, help="steps per method per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--arch", default="dcgan")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every method (e.g. model.width=32)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    # Random 28x28 images: the cost of a step does not depend on the pixels.
    data = InMemoryData(torch.randint(0, 256, (4096, 1, 28, 28), dtype=torch.uint8),
                        torch.zeros(4096, dtype=torch.long), "random-28")
    trainers = {}
    for name in args.methods:
        cfg = load_config(None, [f"model.arch={args.arch}", f"data.batch_size={args.batch}",
                                 f"train.device={args.device}", "train.progress=false", *METHODS[name], *args.set])
        trainers[name] = Trainer(cfg, run_dir=".", data=data)
        for _ in range(3):  # warm-up: allocator, autograd graph caches
            trainers[name]._one_step()

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    times: dict[str, list[float]] = {n: [] for n in args.methods}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                trainer._one_step()
            sync()
            times[name].append((time.perf_counter() - t0) / args.steps)

    base = statistics.median(times[args.methods[0]])
    print(f"# step cost, {args.arch} 28x28x1, batch {args.batch}, {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, {date.today()}")
    print(f"# {args.rounds} interleaved rounds x {args.steps} steps; ratio = median step time / {args.methods[0]}'s")
    print("| method | ms/step (median) | spread (min-max) | steps/s | ratio |")
    print("|---|---|---|---|---|")
    for name in args.methods:
        med = statistics.median(times[name])
        print(f"| {name} | {med * 1e3:.1f} | {min(times[name]) * 1e3:.1f}-{max(times[name]) * 1e3:.1f} | "
              f"{1 / med:.1f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
