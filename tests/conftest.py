"""Shared fixtures: tiny datasets the tests write themselves, and builders of small runs.

Builders are fixtures that return functions, so a test asks for what it uses by name and no
test module imports another:

* ``make_idx_dir(root, n=96, size=28, seed=0, gz=True)``: an MNIST-format folder;
  ``idx_dir``: one in the test's temporary folder.
* ``toy_cfg(tmp_path, *sets)``: a 12-step ring8 run with a small MLP pair;
  ``image_cfg(tmp_path, idx_dir, *sets)``: a 6-step DCGAN run on ``idx_dir``.
* ``final_state(run_dir)``, ``assert_same_state(a, b)``, ``resume_matches_straight(straight, half)``:
  the checks of exact resume.
* ``run_reference_case(name, root)`` with ``REFERENCE_CASES``: the runs whose parameters
  ``training/reference/unconditional.pt`` stores (``training/reference/make_reference.py``
  writes it).

Markers: ``slow`` (a test that trains for seconds or starts processes; ``make test-fast``
leaves them out) and ``distributed`` (several processes on torch.distributed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from steadygan.data import write_idx
from steadygan.training.build import load_config
from steadygan.training.checkpoint import latest_checkpoint, load_checkpoint
from steadygan.training.trainer import train


@pytest.fixture(autouse=True, scope="session")
def _own_cache(tmp_path_factory):
    """A cache of the test session's own (classifiers, verified files): no test reads or fills
    the user's ~/.cache/steadygan; subprocesses inherit it."""
    os.environ["STEADYGAN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(autouse=True)
def _fast_torch():
    torch.set_num_threads(1)  # small tensors: threading costs more than it gives
    yield


# --- data --------------------------------------------------------------------------------------


def _make_idx_dir(root: Path, n: int = 96, size: int = 28, seed: int = 0, gz: bool = True) -> Path:
    """An MNIST-format folder: bright squares whose position encodes the label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = np.zeros((n, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        top = 2 + int(label) * (size - 8) // 10
        images[i, top:top + 6, 4:size - 4] = 200 + rng.integers(0, 55)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(root / f"train-images-idx3-ubyte{ext}", images)
    write_idx(root / f"train-labels-idx1-ubyte{ext}", labels)
    write_idx(root / f"t10k-images-idx3-ubyte{ext}", images[: n // 2])
    write_idx(root / f"t10k-labels-idx1-ubyte{ext}", labels[: n // 2])
    return root


@pytest.fixture
def make_idx_dir():
    return _make_idx_dir


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    return _make_idx_dir(tmp_path / "idx")


# --- small runs --------------------------------------------------------------------------------


def _toy_cfg(tmp_path, *sets):
    return load_config(None, [
        "data.name=ring8", "data.toy_samples=2000", "data.batch_size=32", "model.arch=mlp", "model.z_dim=4",
        "model.width=16", "model.depth=2", "train.steps=12", "train.sample_every=6", "train.checkpoint_every=6",
        "train.log_every=4", "train.progress=false", f"train.out_dir={tmp_path / 'runs'}", *sets])


def _image_cfg(tmp_path, idx_dir, *sets):
    return load_config(None, [
        "data.name=idx", f"data.root={idx_dir}", "data.batch_size=16", "model.width=8", "model.z_dim=8",
        "model.d_norm=batch", "train.steps=6", "train.sample_every=3", "train.checkpoint_every=3",
        "train.progress=false", f"train.out_dir={tmp_path / 'runs'}", *sets])


@pytest.fixture
def toy_cfg():
    return _toy_cfg


@pytest.fixture
def image_cfg():
    return _image_cfg


# --- exact resume ------------------------------------------------------------------------------


def _final_state(run_dir):
    return load_checkpoint(latest_checkpoint(run_dir))


def _assert_same_state(a, b):
    for key in ("generator", "discriminator", "ema"):
        if a[key] is None:
            assert b[key] is None
            continue
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs"
    for key in ("opt_g", "opt_d"):
        for pid, st in a[key]["state"].items():
            for name, tensor in st.items():
                assert torch.equal(torch.as_tensor(tensor), torch.as_tensor(b[key]["state"][pid][name]))
    assert a["step"] == b["step"] and a["d_updates"] == b["d_updates"]


def _resume_matches_straight(cfg_straight, cfg_half):
    straight = train(cfg_straight)
    half = train(cfg_half)
    assert half.step == cfg_half.train.steps
    payload = load_checkpoint(half.checkpoint)
    resumed = train(cfg_straight, run_dir=half.run_dir, resume=payload)
    assert resumed.step == straight.step
    _assert_same_state(_final_state(straight.run_dir), _final_state(resumed.run_dir))


@pytest.fixture
def final_state():
    return _final_state


@pytest.fixture
def assert_same_state():
    return _assert_same_state


@pytest.fixture
def resume_matches_straight():
    return _resume_matches_straight


# --- the stored unconditional reference ---------------------------------------------------------

REFERENCE_COMMON = [
    "train.progress=false", "train.sample_every=1000", "train.checkpoint_every=1000", "train.threads=1",
    # The step as it was when the reference was made; training/test_fast_step.py checks the
    # fast step (one G forward, channels-last, fused D forward) against this one.
    "train.share_fake=false", "train.channels_last=false", "train.fused_d_forward=false"]

REFERENCE_CASES = {
    # 2-D data, MLP pair, lazy R1 + norm clipping on D, two critic steps, EMA.
    "toy": ["data.name=ring8", "data.toy_samples=512", "data.batch_size=32", "model.arch=mlp", "model.z_dim=4",
            "model.width=16", "model.depth=2", "train.steps=6", "train.n_critic=2", "train.ema=0.9",
            "d.penalties=[r1:gamma=1,every=2]", "d.clip=norm:max_norm=1", "train.seed=3"],
    # Images, DCGAN with BatchNorm in G, WGAN-GP on D, the GP-GAN penalty on G, value clipping.
    "image": ["data.name=idx", "data.batch_size=16", "model.width=4", "model.z_dim=8", "train.steps=4",
              "train.ema=0.9", "d.penalties=[wgan-gp:lambda=1]", "g.penalties=[seed-param:lambda=0.1]",
              "d.clip=value:eps=0.05", "train.seed=1"],
}


def _run_reference_case(name: str, root: Path) -> dict[str, dict[str, torch.Tensor]]:
    sets = list(REFERENCE_CASES[name]) + REFERENCE_COMMON + [f"train.out_dir={root / 'runs'}"]
    if name == "image":
        sets.append(f"data.root={_make_idx_dir(root / 'idx')}")
    torch.set_num_threads(1)
    result = train(load_config(None, sets))
    state = load_checkpoint(latest_checkpoint(result.run_dir))
    return {k: state[k] for k in ("generator", "discriminator", "ema")}


@pytest.fixture
def run_reference_case():
    return _run_reference_case
