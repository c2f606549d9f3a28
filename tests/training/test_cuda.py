"""The CUDA path (skipped without a GPU; CI has none): device placement of every tensor the
step touches, penalties under bf16 autocast, and resume on the GPU."""

from __future__ import annotations

import pytest
import torch

from steadygan.core.penalties import PENALTIES
from steadygan.training.checkpoint import load_checkpoint
from steadygan.training.trainer import Trainer, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def cfg(image_cfg):
    return lambda tmp_path, idx_dir, *sets: image_cfg(
        tmp_path, idx_dir, "train.steps=4", "train.sample_every=2", "train.checkpoint_every=2",
        "model.d_norm=none", "train.device=cuda", *sets)


def penalty_sets(name):
    player = "d" if "d" in PENALTIES.get(name).factory.players else "g"
    return [f"{player}.penalties=[{name}]"]


@pytest.mark.parametrize("amp", ["none", "bf16"])
@pytest.mark.parametrize("name", PENALTIES.names())
def test_every_penalty_trains_on_cuda(tmp_path, idx_dir, name, amp, cfg):
    trainer = Trainer(cfg(tmp_path, idx_dir, *penalty_sets(name), f"train.amp={amp}", "train.ema=0.9",
                          "d.clip=agc", "g.clip=value:eps=0.05"), tmp_path / "run")
    (tmp_path / "run").mkdir()
    result = trainer.train()
    assert result.step == 4
    assert all(p.device.type == "cuda" for p in trainer.G.parameters())
    assert all(p.device.type == "cuda" for p in trainer.ema.model.parameters())
    assert all(torch.isfinite(p).all() for p in trainer.D.parameters())


def test_penalty_value_under_autocast_matches_fp32(tmp_path, idx_dir, cfg):
    """bf16 autocast changes the forward's precision, not the penalty's meaning: R1 on
    the same weights and batch agrees with fp32 to bf16 accuracy."""
    from steadygan.core.penalties import PenaltyInputs, build_penalty

    trainer = Trainer(cfg(tmp_path, idx_dir), tmp_path)
    real = trainer._real_batch().x.requires_grad_(True)
    values = {}
    for amp in (False, True):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            logits = trainer.D(real).float()
            inputs = PenaltyInputs(player="d", score=trainer.D, d_params=[], g_params=[], real=real, fake=real,
                                   real_logits=logits, fake_logits=logits, d_loss=None, g_loss=None)
            values[amp] = build_penalty({"name": "r1"}, "d").value(inputs).item()
    assert values[True] == pytest.approx(values[False], rel=0.05)


def test_resume_on_cuda_matches_straight(tmp_path, idx_dir, cfg):
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    sets = ["d.penalties=[r1:every=2]", "train.steps=6"]
    straight = train(cfg(tmp_path, idx_dir, *sets))
    half = train(cfg(tmp_path, idx_dir, "d.penalties=[r1:every=2]", "train.steps=3"))
    resumed = train(cfg(tmp_path, idx_dir, *sets), run_dir=half.run_dir, resume=load_checkpoint(half.checkpoint,
                                                                                                "cuda"))
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for k, v in a["generator"].items():
        assert torch.equal(v, b["generator"][k]), k


SGD = ["d.optimizer=sgd", "g.optimizer=sgd", "d.betas=null", "g.betas=null", "d.lr=0.05", "g.lr=0.05",
       "model.d_norm=none"]


@pytest.mark.parametrize("mode", ["default", "reduce-overhead", "max-autotune"])
def test_compiled_step_on_cuda_trains_the_parameters_of_the_eager_step(tmp_path, idx_dir, mode, monkeypatch, cfg):
    """train.compile on CUDA (Triton kernels; reduce-overhead replays them as CUDA graphs):
    three SGD iterations move the parameters as the eager step does, to fp32 rounding (TF32
    off on both sides)."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    trainers = {}
    for compile_mode in ("none", mode):
        torch.manual_seed(0)
        trainer = Trainer(cfg(tmp_path, idx_dir, *SGD, f"train.compile={compile_mode}", "train.ema=0.5"), tmp_path)
        for _ in range(3):
            stats = trainer._one_step()
        assert all(torch.isfinite(v).all() for v in stats.values())
        trainers[compile_mode] = trainer
    for part in ("G", "D"):
        a, b = getattr(trainers["none"], part).state_dict(), getattr(trainers[mode], part).state_dict()
        for name, tensor in a.items():
            torch.testing.assert_close(b[name], tensor, rtol=1e-4, atol=1e-5, msg=f"{part}.{name}")


def test_resume_on_cuda_with_cuda_graphs_matches_straight(tmp_path, idx_dir, cfg):
    """CUDA graphs with sample grids, checkpoints and the EMA between replays; resumed, the
    run recompiles and ends bit-identical to the straight one."""
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    sets = ["train.compile=reduce-overhead", "train.steps=6", "train.ema=0.9"]
    straight = train(cfg(tmp_path, idx_dir, *sets))
    half = train(cfg(tmp_path, idx_dir, *sets[:-2], "train.steps=3", "train.ema=0.9"))
    resumed = train(cfg(tmp_path, idx_dir, *sets), run_dir=half.run_dir, resume=load_checkpoint(half.checkpoint,
                                                                                                "cuda"))
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for part in ("generator", "discriminator", "ema"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), f"{part}.{k}"
