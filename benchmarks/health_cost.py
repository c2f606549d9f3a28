"""What watching a run costs: the training loop with the health monitor at its default probe
interval against the same loop with the probe off (train.health_every=0), interleaved.

Both trainers run the real loop (``Trainer._loop``: the step, the stats flush every
train.log_every steps, where the status is judged, and the probe every train.health_every
steps) in rounds of ``--steps`` steps each, in turn, so a noisy machine's drifts hit both
alike. Sample grids, checkpoints and evaluation are pushed past the end.

    python benchmarks/health_cost.py                      # DCGAN-28, batch 64, probe every 50, CPU
    python benchmarks/health_cost.py --rounds 9 --every 50 100
    python benchmarks/health_cost.py --class-kl /usr/share/datasets/fashion-mnist
                                          # + the class signal, as in a run evaluating Fashion-MNIST
                                          #   (its cached classifier; trained once if not cached)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from steadygan.data import InMemoryData
from steadygan.metrics import Evaluator
from steadygan.training.build import load_config
from steadygan.training.guards import StopFlag
from steadygan.training.health import Probe
from steadygan.training.tracking import Tracker
from steadygan.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=int, nargs="+", default=[50], help="probe intervals to measure")
    parser.add_argument("--steps", type=int, default=100, help="steps per variant per round (a multiple of each)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--class-kl", metavar="FMNIST_ROOT", help="probe the classes too, with this data's "
                        "classifier (what a run that evaluates Fashion-MNIST has anyway)")
    args = parser.parse_args()
    # Random 28x28 images: the cost of a step and of the probe do not depend on the pixels.
    data = InMemoryData(torch.randint(0, 256, (4096, 1, 28, 28), dtype=torch.uint8),
                        torch.zeros(4096, dtype=torch.long), "random-28")
    variants = {"off": 0, **{f"every {k}": k for k in args.every}}
    root = Path(tempfile.mkdtemp(prefix="health_cost-"))
    loops = {}
    for name, every in variants.items():
        run_dir = root / name.replace(" ", "-")
        run_dir.mkdir()
        cfg = load_config(None, ["model.arch=dcgan", f"data.batch_size={args.batch}", "train.device=cpu",
                                 "train.progress=false", f"train.health_every={every}", "train.sample_every=1000000",
                                 "train.checkpoint_every=1000000", "train.steps=1000000"])
        trainer = Trainer(cfg, run_dir=run_dir, data=data)
        if args.class_kl and every:
            trainer.health.probe = Probe(data, cfg.model.z_dim, 0, trainer.device, class_kl=class_kl(args.class_kl))
        trainer._last_samples, trainer._stop_signal, trainer._failing = None, None, None
        tracker = Tracker(run_dir, 0, 10**6, progress=False, tensorboard=False)
        loops[name] = (trainer, tracker)
        run_to(trainer, tracker, 10)  # warm-up: allocator, autograd graph caches

    times: dict[str, list[float]] = {n: [] for n in variants}
    for _ in range(args.rounds):
        for name, (trainer, tracker) in loops.items():
            start = trainer.step
            t0 = time.perf_counter()
            run_to(trainer, tracker, start + args.steps)
            times[name].append((time.perf_counter() - t0) / args.steps)

    # The probe alone, timed directly: its share of the loop is more precise than the ratio
    # of two noisy loop times.
    # The classes are read at every CLASS_PROBES-th probe: the mean cost of a probe is the mix.
    trainer = next(t for t, _ in loops.values() if t.health.probe is not None)
    monitor, every = trainer.health, trainer.health.every
    probe_s: dict[str, list[float]] = {"with classes": [], "without": []}
    for _ in range(21):
        for kind, step in (("with classes", every * monitor.CLASS_PROBES), ("without", every)):
            t0 = time.perf_counter()
            monitor.measure(trainer.G, trainer.D, step)
            probe_s[kind].append(time.perf_counter() - t0)
    with_classes, without = (statistics.median(v) for v in probe_s.values())
    probe = (with_classes + (monitor.CLASS_PROBES - 1) * without) / monitor.CLASS_PROBES
    base = statistics.median(times["off"])
    classes = ", with the class signal (256 samples classified)" if args.class_kl else ""
    print(f"# health monitor cost{classes}, dcgan 28x28x1, batch {args.batch}, cpu, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, {date.today()}")
    print(f"# {args.rounds} interleaved rounds x {args.steps} steps of the training loop; ratio = median / off's")
    print("| probe | ms/step (median) | spread (min-max) | ratio |")
    print("|---|---|---|---|")
    for name in variants:
        med = statistics.median(times[name])
        print(f"| {name} | {med * 1e3:.1f} | {min(times[name]) * 1e3:.1f}-{max(times[name]) * 1e3:.1f} | "
              f"{med / base:.3f} |")
    if args.class_kl:
        print(f"\nthe probe alone: {with_classes * 1e3:.1f} ms with the classes, {without * 1e3:.1f} ms without "
              f"(medians of 21); the classes are read at one probe in {monitor.CLASS_PROBES}")
    print(f"\nthe probe alone, on average: {probe * 1e3:.1f} ms per probe, that is "
          + ", ".join(f"{probe / (k * base):.2%} of {k} steps" for k in args.every))


def class_kl(root: str):
    """The evaluator's class KL for Fashion-MNIST at ``root``, its reference built off the clock."""
    evaluator = Evaluator("fashion-mnist", root, metrics=("fid",), n=2000)
    evaluator.reference()
    return evaluator.class_kl


def run_to(trainer: Trainer, tracker: Tracker, step: int) -> None:
    trainer.cfg.train.steps = step
    trainer._loop(tracker, StopFlag())


if __name__ == "__main__":
    main()
