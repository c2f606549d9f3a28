"""How far above chance a short conditional run's class agreement lands (sets the test's margin).

The data are tests/conftest.py's synthetic MNIST-format images: a bright band whose height
encodes the label (10 classes), so a sample's class can be read off exactly from the band's
position (no trained classifier in the loop). Trains the conditional DCGAN of
tests/training/test_conditional_training.py for each seed and prints the share of samples whose band
sits where their requested class puts it.

    python benchmarks/conditional_margin.py [--seeds 5] [--steps 150]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from steadygan.training.build import load_config
from steadygan.training.sampling import load_generator
from steadygan.training.trainer import train

SETTINGS = ["data.name=idx", "data.batch_size=32", "model.conditional=true", "model.width=8", "model.z_dim=8",
            "d.lr=0.002", "g.lr=0.002", "train.progress=false", "train.sample_every=100000",
            "train.checkpoint_every=100000", "train.threads=1"]


def make_idx_dir(root: Path) -> Path:
    """tests/conftest.py's synthetic MNIST-format folder (that file loaded by its path: it is no package module)."""
    spec = importlib.util.spec_from_file_location("steadygan_tests_conftest",
                                                  Path(__file__).resolve().parents[1] / "tests" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    return conftest._make_idx_dir(root)


def band_class(images: torch.Tensor, size: int = 28) -> torch.Tensor:
    """The label conftest.make_idx_dir encodes: the band starts at row 2 + label*(size-8)//10."""
    rows = images.float().clamp(min=0).mean(dim=(1, 3))  # (N, H): brightness per row, [-1,1] -> >= 0
    tops = torch.tensor([2 + k * (size - 8) // 10 for k in range(10)])
    band = torch.stack([rows[:, t:t + 6].mean(1) for t in tops], 1)
    return band.argmax(1)


def agreement(run_dir: Path, n: int = 500) -> float:
    loaded = load_generator(run_dir)
    labels = loaded.labels_for(n)
    return (band_class(loaded.sample(n, seed=1)) == labels).float().mean().item()


def run(seed: int, steps: int, root: Path) -> float:
    cfg = load_config(None, SETTINGS + [f"data.root={root / 'idx'}", f"train.steps={steps}", f"train.seed={seed}",
                                        f"train.out_dir={root / 'runs'}"])
    return agreement(train(cfg).run_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        make_idx_dir(Path(tmp) / "idx")
        for seed in range(args.seeds):
            start = time.perf_counter()
            print(f"seed {seed}: class agreement {run(seed, args.steps, Path(tmp)):.3f} "
                  f"(chance 0.1), {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
