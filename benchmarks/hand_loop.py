"""steadygan's training step against a minimal hand-written PyTorch GAN loop, same networks.

The hand loop is the canonical form most published GAN scripts share: per iteration one
generator forward, whose batch serves the discriminator update (detached) and the generator
update; two discriminator forwards (real, fake); BCE-with-logits (the non-saturating loss);
Adam(2e-4, betas 0.5/0.999) for both; default NCHW layout. steadygan trains deep copies of
the same modules, with the same initial weights and the same data, through its ``Trainer``
one iteration at a time: with the default config (channels-last, fused D forward), with
one generator forward shared by both updates as well (``train.share_fake=true``, the hand
loop's scheme, opt-in), and with the plain step it had before (all three off), so every
gain is measured in the same run.

Architectures:
  dcgan28      steadygan's DCGAN pair at 28 px, 1 channel
  upsample32   a generator of nearest-upsample + 3x3 convolutions and a 4-conv discriminator
               with dropout and BatchNorm, at 32 px (a common published shape, written here)
  published32  the same shapes with the published loop's BatchNorm epsilon, 0.8, in G's
               convolutions and in D (its BatchNorm2d(channels, 0.8))

Rounds interleave the four contenders and fp32 matmul probes of several sizes, so a noisy machine's
drifts hit all alike (on CUDA each timing waits for the device). Reported per architecture: median
ms/iteration, the ratio
hand / steadygan (above 1: steadygan is faster), FLOPs per iteration (matmuls and
convolutions, forward and backward, counted by torch.utils.flop_counter), the GFLOP/s each
achieves, and that rate as a fraction of the best matmul rate measured in the same run (the
best of the probe sizes).

    python benchmarks/hand_loop.py                       # both architectures, batch 64, CPU
    python benchmarks/hand_loop.py --arch dcgan28 --rounds 9 --iters 10
    python benchmarks/hand_loop.py --device cuda --compile reduce-overhead --iters 20
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from datetime import date

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from steadygan.data import InMemoryData
from steadygan.models import GanPair, build_models
from steadygan.training.build import load_config
from steadygan.training.trainer import Trainer

Z_DIM = 100
PLAIN_STEP = ["train.share_fake=false", "train.channels_last=false", "train.fused_d_forward=false"]


class UpsampleGenerator(nn.Module):
    """z -> width x 8 x 8 -> two (nearest x2, 3x3 conv, BatchNorm, LeakyReLU) -> 3x3 conv -> tanh.
    ``bn_eps``: the convolutions' BatchNorm epsilon (the published loop passes 0.8 where it
    meant the momentum, and trains with it)."""

    def __init__(self, z_dim: int = Z_DIM, channels: int = 1, width: int = 128, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.width = width
        self.project = nn.Linear(z_dim, width * 8 * 8)
        self.body = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.Upsample(scale_factor=2), nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width, bn_eps),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2), nn.Conv2d(width, width // 2, 3, padding=1),
            nn.BatchNorm2d(width // 2, bn_eps), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width // 2, channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(-1, self.width, 8, 8))


class DropoutBatchNormDiscriminator(nn.Module):
    """Four stride-2 3x3 convolutions (16, 32, 64, 128 channels), each followed by LeakyReLU
    and 2-D dropout, BatchNorm (epsilon ``bn_eps``) after all but the first; a linear logit at 2 x 2."""

    def __init__(self, channels: int = 1, bn_eps: float = 1e-5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate([(channels, 16), (16, 32), (32, 64), (64, 128)]):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
            if i > 0:
                layers.append(nn.BatchNorm2d(cout, bn_eps))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(128 * 2 * 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)


ARCHS = ("dcgan28", "upsample32", "published32")
PUBLISHED_BN_EPS = 0.8  # BatchNorm2d(channels, 0.8) in the published loop: epsilon 0.8


def make_pair(arch: str) -> tuple[GanPair, tuple[int, int, int]]:
    if arch == "dcgan28":
        return build_models("dcgan", (1, 28, 28), Z_DIM), (1, 28, 28)
    eps = PUBLISHED_BN_EPS if arch == "published32" else 1e-5
    return GanPair(UpsampleGenerator(bn_eps=eps), DropoutBatchNormDiscriminator(bn_eps=eps)), (1, 32, 32)


class HandLoop:
    """The hand-written loop: what a user writes without a library."""

    def __init__(self, pair: GanPair, images: torch.Tensor, batch: int) -> None:
        self.G, self.D = pair.generator.to(images.device), pair.discriminator.to(images.device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.images, self.batch = images, batch

    def iteration(self) -> None:
        device = self.images.device
        index = torch.randint(0, len(self.images), (self.batch,), device=device)
        real = self.images[index].float().div(127.5).sub(1.0)
        ones, zeros = torch.ones(self.batch, device=device), torch.zeros(self.batch, device=device)
        fake = self.G(torch.randn(self.batch, Z_DIM, device=device))
        self.opt_d.zero_grad()
        d_loss = (F.binary_cross_entropy_with_logits(self.D(real), ones)
                  + F.binary_cross_entropy_with_logits(self.D(fake.detach()), zeros))
        d_loss.backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        g_loss = F.binary_cross_entropy_with_logits(self.D(fake), ones)
        g_loss.backward()
        self.opt_g.step()


def steadygan_trainer(pair: GanPair, images: torch.Tensor, batch: int, extra: list[str]) -> Trainer:
    data = InMemoryData(images.cpu(), torch.zeros(len(images), dtype=torch.long), f"random-{images.shape[-1]}")
    cfg = load_config(None, [f"data.batch_size={batch}", f"model.z_dim={Z_DIM}", f"train.device={images.device}",
                             "train.progress=false", *extra])
    return Trainer(cfg, run_dir=".", data=data, pair=pair)


def flops_of(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


MATMUL_SIZES = {"cpu": (512, 1024, 2048), "cuda": (4096, 8192)}


def matmul_probe(device: torch.device) -> dict[int, float]:
    """GFLOP/s of an n x n fp32 matmul (2 n^3 FLOPs) for each probe size n (TF32 off on CUDA:
    fp32 as on the CPU). The machine's peak is the best size's median over the rounds: every
    "% of matmul" is then against the same, best-case, rate."""
    rates = {}
    for n in MATMUL_SIZES["cuda" if device.type == "cuda" else "cpu"]:
        reps = max(2, int(2e10 // (2 * n ** 3)))  # about 20 GFLOP of work per size
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        a @ b
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        synchronize(device)
        rates[n] = 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=8, help="iterations per contender per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (each timing then waits for the device)")
    parser.add_argument("--compile", default=None, metavar="MODE",
                        help="also time steadygan with train.compile=MODE (default, reduce-overhead, max-autotune)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for the steadygan side (e.g. train.share_fake=false)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 throughout

    names = {"hand": "hand loop", "steadygan": "steadygan", "shared": "+ share_fake", "plain": "plain step"}
    if args.compile:
        names["compiled"] = f"+ compile={args.compile}"
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else platform.processor() or platform.machine())
    print(f"{date.today()}, {machine}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.rounds} rounds x {args.iters} iterations"
          + (f", steadygan --set {' '.join(args.set)}" if args.set else ""))
    print("\n| architecture | " + " | ".join(f"{n} ms/it" for n in names.values())
          + " | " + " | ".join(f"hand / {n}" for key, n in names.items() if key != "hand")
          + " | " + " | ".join(f"{n} GFLOP/s (% of matmul)" for n in names.values()) + " | matmul GFLOP/s |")
    print("|---" * (1 + 3 * len(names)) + "|")
    for arch in args.arch:
        torch.manual_seed(0)
        pair, shape = make_pair(arch)
        images = torch.randint(0, 256, (4096, *shape), dtype=torch.uint8).to(device)

        def copied(pair: GanPair = pair) -> GanPair:
            return GanPair(copy.deepcopy(pair.generator), copy.deepcopy(pair.discriminator))

        contenders = {"hand": HandLoop(copied(), images, args.batch).iteration,
                      "steadygan": steadygan_trainer(copied(), images, args.batch, args.set)._one_step,
                      "shared": steadygan_trainer(copied(), images, args.batch,
                                                  ["train.share_fake=true", *args.set])._one_step,
                      "plain": steadygan_trainer(copied(), images, args.batch, [*PLAIN_STEP, *args.set])._one_step}
        if args.compile:
            contenders["compiled"] = steadygan_trainer(copied(), images, args.batch,
                                                       [f"train.compile={args.compile}", *args.set])._one_step
        for fn in contenders.values():  # warm-up: allocator, oneDNN/cuDNN caches, compilation
            for _ in range(5):
                fn()
        synchronize(device)
        flops = {name: flops_of(fn) for name, fn in contenders.items() if name != "compiled"}
        # The counter cannot see inside compiled code: count the eager step's FLOPs (useful work).
        # A compiled backward also computes the idle network's weight gradients that the eager
        # backward(inputs=...) skips, so the compiled step executes more than this.
        flops["compiled"] = flops["steadygan"]
        times: dict[str, list[float]] = {name: [] for name in contenders}
        matmul: dict[int, list[float]] = {}
        for _ in range(args.rounds):
            for name, fn in contenders.items():
                synchronize(device)
                t0 = time.perf_counter()
                for _ in range(args.iters):
                    fn()
                synchronize(device)
                times[name].append((time.perf_counter() - t0) / args.iters)
            for n, rate in matmul_probe(device).items():
                matmul.setdefault(n, []).append(rate)
        ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        peak_n = max(matmul, key=lambda n: statistics.median(matmul[n]))
        peak = statistics.median(matmul[peak_n])
        rate = {name: flops[name] / (ms[name] / 1e3) / 1e9 for name in contenders}
        print(f"| {arch} | " + " | ".join(f"{ms[k]:.1f}" for k in names)
              + " | " + " | ".join(f"{ms['hand'] / ms[k]:.2f}" for k in names if k != "hand")
              + " | " + " | ".join(f"{rate[k]:.0f} ({100 * rate[k] / peak:.0f}%)" for k in names)
              + f" | {peak:.0f} (n = {peak_n}) |", flush=True)

if __name__ == "__main__":
    main()
