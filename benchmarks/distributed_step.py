"""What a second process costs and gives: the distributed step against the one-process step.

Launches, alternately, one process (1 thread, batch B) and a 2-process gloo job on
loopback (1 thread each, batch B per rank, global batch 2B), each timing `--steps` steps
per round after a warm-up. The 2-process job also times the all-reduce of one update's
gradient bytes alone. Reported: medians, bytes all-reduced per step, and the scaling
efficiency T(1 process) / T(2 processes) (1.0 = twice the samples per second).

    python benchmarks/distributed_step.py                   # DCGAN-28, B=64, 3 alternations
    python benchmarks/distributed_step.py --scaling         # + bytes/FLOPs for DCGAN-64 on N GPUs

`--scaling` counts one training step's FLOPs (torch's FlopCounterMode) and gradient bytes
for the DCGAN at 64 px and prints the expected communication share on 8 GPUs of one node
and on 4 nodes, from the stated bandwidths and sustained throughput (assumptions, not
measurements: no multi-GPU machine was available).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import torch

CONFIG = ["data.name=fashion-mnist", "data.limit=4096", "model.arch=dcgan", "train.ema=0",
          "train.progress=false", "train.log_every=1000000", "train.sample_every=1000000",
          "train.checkpoint_every=1000000"]


def build_trainer(batch: int, extra: list[str]):
    from steadygan.training.build import load_config
    from steadygan.training.trainer import Trainer

    cfg = load_config(None, CONFIG + [f"data.batch_size={batch}", "train.device=cpu"] + extra)
    return Trainer(cfg, None)


def time_steps(trainer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        trainer._one_step()
    return (time.perf_counter() - start) / steps


def grad_bytes(trainer) -> int:
    return sum(p.numel() * p.element_size() for net in (trainer.G, trainer.D) for p in net.parameters())


def worker(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    from steadygan.training.distributed import init_from_environment, shutdown

    torch.set_num_threads(1)
    ctx = init_from_environment("cpu", timeout_s=300)
    trainer = build_trainer(args.batch, args.set)
    time_steps(trainer, args.warmup)
    step_times, reduce_times = [], []
    nbytes = grad_bytes(trainer)
    buffer = torch.zeros(nbytes // 4)
    for _ in range(args.rounds):
        step_times.append(time_steps(trainer, args.steps))
        if ctx.distributed:
            dist.barrier()
            start = time.perf_counter()
            for _ in range(args.steps):
                # One step all-reduces D's gradients and G's: the same bytes, here in one go.
                dist.all_reduce(buffer)
            reduce_times.append((time.perf_counter() - start) / args.steps)
    if ctx.is_main:
        print(json.dumps({"world": ctx.world_size, "step_s": statistics.median(step_times),
                          "allreduce_s": statistics.median(reduce_times) if reduce_times else None,
                          "grad_bytes": nbytes}))
    shutdown()


def launch(world: int, argv: list[str]) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for r in range(world):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        if world > 1:
            env.update(RANK=str(r), WORLD_SIZE=str(world), LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, __file__, "--worker", *argv], env=env,
                                      stdout=subprocess.PIPE, text=True))
    outputs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {[p.returncode for p in procs]}")
    return json.loads(outputs[0].strip().splitlines()[-1])


def scaling(gpus_per_node: int = 8, nodes: int = 4, batch: int = 64, nvlink_gbps: float = 300.0,
            network_gbps: float = 50.0, sustained_tflops: float = 200.0) -> None:
    """Bytes per step against compute per step for the DCGAN at 64 px (see module docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    from steadygan.data import InMemoryData
    from steadygan.training.build import load_config
    from steadygan.training.trainer import Trainer

    images = torch.randint(0, 256, (batch * 2, 3, 64, 64), dtype=torch.uint8)
    cfg = load_config(None, [f"data.batch_size={batch}", "model.arch=dcgan", "data.resolution=64",
                             "data.channels=3", "train.ema=0", "train.progress=false", "train.device=cpu"])
    trainer = Trainer(cfg, None, data=InMemoryData(images, None, "random-64"))
    trainer._one_step()
    with FlopCounterMode(display=False) as counter:
        trainer._one_step()
    flops = counter.get_total_flops()
    nbytes = grad_bytes(trainer)
    compute_s = flops / (sustained_tflops * 1e12)
    print(f"DCGAN-64, batch {batch} per GPU: {flops / 1e9:.1f} GFLOP per step (D and G update), "
          f"{nbytes / 1e6:.1f} MB of gradients all-reduced per step")
    print(f"compute at an assumed sustained {sustained_tflops:.0f} TFLOP/s: {compute_s * 1e3:.2f} ms per step")
    for label, n, bandwidth in ((f"{gpus_per_node} GPUs, one node (NVLink, {nvlink_gbps:.0f} GB/s bus bandwidth)",
                                 gpus_per_node, nvlink_gbps),
                                (f"{nodes} nodes x {gpus_per_node} GPUs ({network_gbps:.0f} GB/s per node network)",
                                 nodes * gpus_per_node, network_gbps)):
        # A ring all-reduce moves 2 (n - 1) / n of the buffer through the slowest link.
        comm_s = 2 * (n - 1) / n * nbytes / (bandwidth * 1e9)
        print(f"{label}: {comm_s * 1e3:.2f} ms of all-reduce per step, {comm_s / (comm_s + compute_s):.0%} of a "
              f"step if not overlapped; scaling efficiency {compute_s / (compute_s + comm_s):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=64, help="batch per process")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds inside each launch")
    parser.add_argument("--alternations", type=int, default=3, help="1-process / 2-process launches, alternated")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--scaling", action="store_true")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    argv = ["--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--rounds", str(args.rounds), *sum((["--set", s] for s in args.set), [])]
    one, two = [], []
    for _ in range(args.alternations):
        one.append(launch(1, argv))
        two.append(launch(2, argv))
    t1 = statistics.median(r["step_s"] for r in one)
    t2 = statistics.median(r["step_s"] for r in two)
    comm = statistics.median(r["allreduce_s"] for r in two)
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, DCGAN-28, batch {args.batch} per process, "
          f"{' '.join(args.set) or 'default config'}")
    print(f"gradient bytes all-reduced per step: {two[0]['grad_bytes'] / 1e6:.2f} MB (+ 16 B of control)")
    print("| layout | ms/step (median of launches) | samples/s |")
    print("|---|---|---|")
    print(f"| 1 process, batch {args.batch} | {t1 * 1e3:.1f} | {args.batch / t1:.0f} |")
    print(f"| 2 processes, batch {args.batch} each | {t2 * 1e3:.1f} | {2 * args.batch / t2:.0f} |")
    print(f"all-reduce of one step's gradients alone (2 processes, loopback gloo): {comm * 1e3:.2f} ms")
    print(f"scaling efficiency T1/T2: {t1 / t2:.2f}")
    if args.scaling:
        scaling()


if __name__ == "__main__":
    main()
