"""Write tests/reference/unconditional.pt: parameters after a few steps of two small runs.

Made once from the code *before* the core carried batches and labels (commit of 2026-11-26),
so that tests/test_reference.py can check that unconditional training still computes the
same parameters for the same seed. Re-running this script overwrites the reference: do that
only for a change that is meant to alter the arithmetic, and say so in the commit.

    python tests/reference/make_reference.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from conftest import make_idx_dir  # noqa: E402

from steadygan.training.checkpoint import latest_checkpoint, load_checkpoint  # noqa: E402
from steadygan.training.build import load_config  # noqa: E402
from steadygan.training.trainer import train  # noqa: E402

COMMON = ["train.progress=false", "train.sample_every=1000", "train.checkpoint_every=1000", "train.threads=1",
          # The step as it was when the reference was made; tests/test_fast_step.py checks the
          # fast step (one G forward, channels-last, fused D forward) against this one.
          "train.share_fake=false", "train.channels_last=false", "train.fused_d_forward=false"]

CASES = {
    # 2-D data, MLP pair, lazy R1 + norm clipping on D, two critic steps, EMA.
    "toy": ["data.name=ring8", "data.toy_samples=512", "data.batch_size=32", "model.arch=mlp", "model.z_dim=4",
            "model.width=16", "model.depth=2", "train.steps=6", "train.n_critic=2", "train.ema=0.9",
            "d.penalties=[r1:gamma=1,every=2]", "d.clip=norm:max_norm=1", "train.seed=3"],
    # Images, DCGAN with BatchNorm in G, WGAN-GP on D, the GP-GAN penalty on G, value clipping.
    "image": ["data.name=idx", "data.batch_size=16", "model.width=4", "model.z_dim=8", "train.steps=4",
              "train.ema=0.9", "d.penalties=[wgan-gp:lambda=1]", "g.penalties=[seed-param:lambda=0.1]",
              "d.clip=value:eps=0.05", "train.seed=1"],
}


def run_case(name: str, root: Path) -> dict[str, dict[str, torch.Tensor]]:
    sets = list(CASES[name]) + COMMON + [f"train.out_dir={root / 'runs'}"]
    if name == "image":
        sets.append(f"data.root={make_idx_dir(root / 'idx')}")
    torch.set_num_threads(1)
    result = train(load_config(None, sets))
    state = load_checkpoint(latest_checkpoint(result.run_dir))
    return {k: state[k] for k in ("generator", "discriminator", "ema")}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = {name: run_case(name, Path(tmp) / name) for name in CASES}
    torch.save(out, HERE / "unconditional.pt")
    print(f"wrote {HERE / 'unconditional.pt'}")


if __name__ == "__main__":
    main()
