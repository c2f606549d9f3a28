"""The loop: exact resume, the NaN guard, budgets, run directories."""

from __future__ import annotations

import json

import pytest
import torch

from steadygan.errors import CheckpointError, ConfigError, TrainingDiverged
from steadygan.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from steadygan.training.trainer import Trainer, new_run_dir, train


@pytest.mark.slow
def test_resume_is_bit_exact_toy(tmp_path, toy_cfg, resume_matches_straight):
    sets = ["loss=wasserstein", "d.penalties=[wgan-gp]", "train.n_critic=2", "train.ema=0.9",
            "g.penalties=[nk:eta=0.1]", "d.clip=norm:max_norm=5"]
    resume_matches_straight(toy_cfg(tmp_path, *sets), toy_cfg(tmp_path, *sets, "train.steps=6"))


@pytest.mark.slow
def test_resume_is_bit_exact_images_with_batchnorm_lazy_r1(tmp_path, idx_dir, image_cfg, resume_matches_straight):
    # 96 samples / batch 16: an epoch boundary falls inside the run, so the sampler's state matters.
    sets = ["d.penalties=[r1:gamma=1,every=2]", "train.ema=0.5", "train.steps=8", "d.clip=agc:clipping=0.05"]
    with pytest.warns(UserWarning, match="BatchNorm"):
        half = image_cfg(tmp_path, idx_dir, *sets[:-2], "train.steps=4", "train.ema=0.5", "d.clip=agc:clipping=0.05")
        resume_matches_straight(image_cfg(tmp_path, idx_dir, *sets), half)


@pytest.mark.slow
def test_resume_differs_without_rng_state(tmp_path, toy_cfg, final_state):
    """Guard on the test above: dropping the RNG/sampler state must break exactness."""
    sets = ["d.penalties=[wgan-gp]"]
    straight = train(toy_cfg(tmp_path, *sets))
    half = train(toy_cfg(tmp_path, *sets, "train.steps=6"))
    payload = load_checkpoint(half.checkpoint)
    trainer = Trainer(toy_cfg(tmp_path, *sets), half.run_dir)
    payload["rng"]["torch"] = torch.manual_seed(12345).get_state()
    trainer.load_state_dict(payload)
    trainer.train()
    a, b = final_state(straight.run_dir), final_state(half.run_dir)
    assert any(not torch.equal(a["generator"][k], b["generator"][k]) for k in a["generator"])


def test_run_directory_contents(tmp_path, toy_cfg):
    result = train(toy_cfg(tmp_path))
    run = result.run_dir
    assert run.name == "00000" and (run / "config.yaml").exists()
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 13))
    for key in ("Loss/D", "Loss/G", "Grad/D/norm", "Grad/D/clipped", "Grad/G/norm", "elapsed_s"):
        assert all(key in r for r in rows)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000006.png", "step-00000012.png"]
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-00000006.pt", "ckpt-00000012.pt"]
    assert any((run / "tensorboard").iterdir())
    assert new_run_dir(tmp_path / "runs", "x y").name == "00001-x-y"


@pytest.mark.slow
def test_keep_last_checkpoints(tmp_path, toy_cfg):
    result = train(toy_cfg(tmp_path, "train.checkpoint_every=2", "train.keep_checkpoints=2"))
    assert [p.name for p in list_checkpoints(result.run_dir)] == ["ckpt-00000010.pt", "ckpt-00000012.pt"]


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, toy_cfg):
    cfg = toy_cfg(tmp_path, "train.steps=20", "train.checkpoint_every=5", "train.log_every=1")
    trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
    original = trainer._one_step

    def poisoned():
        stats = original()
        if trainer.step == 8:
            with torch.no_grad():
                next(trainer.D.parameters()).fill_(float("nan"))
        return stats

    monkeypatch.setattr(trainer, "_one_step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 9: .*ckpt-00000005.pt"):
        trainer.train()
    ckpts = list_checkpoints(trainer.run_dir)
    assert [p.name for p in ckpts] == ["ckpt-00000005.pt"]
    good = load_checkpoint(ckpts[0])
    assert all(torch.isfinite(t).all() for t in good["discriminator"].values())


@pytest.mark.slow
def test_time_budget_stops_early(tmp_path, toy_cfg):
    result = train(toy_cfg(tmp_path, "train.steps=100000", "train.time=0.5"))
    assert result.stopped == "time" and 0 < result.step < 100000
    assert latest_checkpoint(result.run_dir).name == f"ckpt-{result.step:08d}.pt"


@pytest.mark.slow
def test_interrupt_stops_at_step_boundary(tmp_path, monkeypatch, toy_cfg):
    cfg = toy_cfg(tmp_path, "train.steps=50")
    trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
    original = trainer._one_step

    def interrupt_at_7():
        stats = original()
        if trainer.step == 7:
            import os
            import signal
            os.kill(os.getpid(), signal.SIGINT)
        return stats

    monkeypatch.setattr(trainer, "_one_step", interrupt_at_7)
    result = trainer.train()
    assert result.stopped == "interrupted" and result.step == 7
    assert latest_checkpoint(result.run_dir).name == "ckpt-00000007.pt"


def test_dataset_smaller_than_batch(tmp_path, idx_dir, image_cfg):
    from steadygan.data import DataError

    with pytest.raises(DataError, match="larger than"):
        train(image_cfg(tmp_path, idx_dir, "data.batch_size=500"))


@pytest.mark.slow
def test_init_from_starts_a_new_run_from_another_runs_weights(tmp_path, toy_cfg, final_state):
    source = train(toy_cfg(tmp_path, "train.steps=4", "train.ema=0.9"))
    src = final_state(source.run_dir)
    cfg = toy_cfg(tmp_path, "train.steps=3", "train.ema=0.9", f"train.init_from={source.run_dir}", "train.seed=5")
    trainer = Trainer(cfg, new_run_dir(tmp_path / "runs", "ft"))
    trainer.init_from(cfg.train.init_from)
    for key, net in (("generator", trainer.G), ("discriminator", trainer.D), ("ema", trainer.ema.model)):
        for name, tensor in net.state_dict().items():
            assert torch.equal(tensor, src[key][name]), f"{key}.{name} not taken from the source run"
    assert trainer.step == 0 and not trainer.g.optimizer.state  # fresh optimisers, step 0
    tuned = train(cfg)
    assert tuned.step == 3 and tuned.run_dir != source.run_dir
    # Training continued from the source's weights: closer to them than a fresh start is.
    fresh = train(toy_cfg(tmp_path, "train.steps=3", "train.ema=0.9", "train.seed=5"))

    def distance(run):
        g = final_state(run.run_dir)["generator"]
        return sum((g[k] - src["generator"][k]).norm() for k in g)

    assert distance(tuned) < distance(fresh)


def test_init_from_with_other_shapes_names_the_layer(tmp_path, toy_cfg):
    source = train(toy_cfg(tmp_path, "train.steps=2"))
    cfg = toy_cfg(tmp_path, "model.width=32", f"train.init_from={source.run_dir}")
    with pytest.raises(CheckpointError, match=r"layer 'net.0.weight' has shape \(16, 4\) there but \(32, 4\) here"):
        train(cfg)
    with pytest.raises(ConfigError, match="neither a checkpoint file nor a run directory"):
        train(toy_cfg(tmp_path, f"train.init_from={tmp_path / 'nowhere'}"))


@pytest.mark.slow
def test_format_1_checkpoints_still_sample_and_resume(tmp_path, toy_cfg):
    """Checkpoints written before format 2: every option stored (ignored ones too), no data description."""
    import yaml

    from steadygan.cli import main

    first = train(toy_cfg(tmp_path, "train.steps=2"))
    ckpt = latest_checkpoint(first.run_dir)
    payload = load_checkpoint(ckpt)
    del payload["data"], payload["format"], payload["config"]["model"]["conditional"]  # keys added since
    for player in ("d", "g"):
        payload["config"][player].update(momentum=0.0, nesterov=False, alpha=0.99)
    torch.save({"format": 1, **payload}, ckpt)
    (first.run_dir / "config.yaml").write_text(yaml.safe_dump(payload["config"]))  # as that release wrote it
    assert main(["sample", str(first.run_dir), "-n", "8", "-o", str(tmp_path / "s.png")]) == 0
    assert main(["train", "--resume", str(first.run_dir), "--steps", "3", "--no-progress"]) == 0
    assert load_checkpoint(latest_checkpoint(first.run_dir))["step"] == 3


def test_a_new_run_that_diverges_before_its_first_checkpoint_leaves_no_run_directory(tmp_path, monkeypatch, capsys):
    from steadygan.cli import main

    original = Trainer._one_step

    def nan_from_the_start(self):
        stats = original(self)
        stats["Loss/G"] = stats["Loss/G"] * float("nan")  # a generator that outputs NaN
        return stats

    monkeypatch.setattr(Trainer, "_one_step", nan_from_the_start)
    out = tmp_path / "runs"
    assert main(["train", "--set", "data.name=ring8", "--set", "data.toy_samples=500", "--set", "model.arch=mlp",
                 "--set", "model.width=8", "--set", "model.depth=1", "--set", "model.z_dim=2", "--steps", "5",
                 "--set", "train.log_every=1", "--out", str(out), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert " ".join(err.split()) == (
        f"steadygan train: training diverged at step 1: Loss/G = nan; stopping (no checkpoint was written, so the "
        f"new run directory {out / '00000'} was removed). Lower the learning rate or add a stabiliser (see "
        "`steadygan methods`).")
    assert list(out.iterdir()) == []
