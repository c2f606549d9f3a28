"""Run-directory guards: one process at a time, SIGTERM/SIGINT stops, finite checkpoints,
stats without repeated steps, rollback on divergence, write failures, bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from steadygan.cli import main
from steadygan.errors import StorageError, TrainingDiverged
from steadygan.training import checkpoint
from steadygan.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from steadygan.training.tracking import truncate_stats
from steadygan.training.trainer import Trainer, new_run_dir, train

ROOT = Path(__file__).resolve().parents[2]
TOY = ["--config", "configs/ring8.yaml", "--set", "data.toy_samples=1000", "--set", "data.batch_size=32",
       "--set", "model.width=16", "--set", "model.depth=2", "--no-progress"]


def steps_in(run_dir: Path) -> list[int]:
    return [r["step"] for r in map(json.loads, (run_dir / "stats.jsonl").read_text().splitlines()) if "Loss/D" in r]


@pytest.mark.slow
def test_a_second_process_on_a_locked_run_is_refused_with_the_first_ones_pid(tmp_path, capsys, toy_cfg):
    first = train(toy_cfg(tmp_path, "train.steps=2"))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from steadygan.training.guards import run_lock\n"
        "with run_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)"), str(first.run_dir)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["train", "--resume", str(first.run_dir), "--steps", "4", "--no-progress"]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert f"is in use by another steadygan process (PID {holder.pid})" in err
    # The lock dies with its holder: a lock file left behind by a killed process is no obstacle.
    (first.run_dir / ".lock").write_text("999999\n")
    assert main(["train", "--resume", str(first.run_dir), "--steps", "4", "--no-progress"]) == 0


@pytest.mark.slow
def test_resume_cuts_stats_back_to_the_checkpoint_so_every_step_appears_once(tmp_path, toy_cfg):
    cfg = toy_cfg(tmp_path, "train.steps=12", "train.checkpoint_every=6", "train.log_every=1")
    trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
    original = trainer._one_step

    def killed_after_9():
        if trainer.step == 9:  # steps 7..9 are logged after the step-6 checkpoint, then the process "dies"
            raise SystemExit
        return original()

    trainer._one_step = killed_after_9
    with pytest.raises(SystemExit):
        trainer.train()
    run = trainer.run_dir
    (run / "checkpoints" / "ckpt-00000009.pt").unlink(missing_ok=True)
    with open(run / "stats.jsonl", "a") as f:
        f.write('{"step": 10, "Loss/D": 1.0')  # a line torn by the kill
    assert steps_in_raw(run)[-1] == 9 and latest_checkpoint(run).name == "ckpt-00000006.pt"
    train(cfg, run_dir=run, resume=load_checkpoint(latest_checkpoint(run)))
    assert steps_in(run) == list(range(1, 13))


def steps_in_raw(run_dir: Path) -> list[int]:
    out = []
    for line in (run_dir / "stats.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line)["step"])
        except ValueError:
            pass
    return out


def test_truncate_stats_keeps_rows_up_to_the_step(tmp_path):
    path = tmp_path / "stats.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "Metric/fid": 3}\n{"step": 3}\n{"step": 4')
    assert truncate_stats(path, 2) == 2
    assert path.read_text() == '{"step": 1}\n{"step": 2, "Metric/fid": 3}\n'
    assert truncate_stats(path, 5) == 0 and truncate_stats(tmp_path / "none.jsonl", 1) == 0


def test_a_non_finite_weight_is_never_checkpointed(tmp_path, toy_cfg):
    cfg = toy_cfg(tmp_path, "train.steps=12", "train.checkpoint_every=4")
    trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
    original = trainer._one_step

    def poison_weights():
        stats = original()
        if trainer.step == 8:  # after step 8's losses were computed (finite), before its checkpoint
            with torch.no_grad():
                next(trainer.G.parameters()).fill_(float("inf"))
        return stats

    trainer._one_step = poison_weights
    with pytest.raises(TrainingDiverged, match="step 8: G.net.0.weight = nan.*ckpt-00000004.pt"):
        trainer.train()
    assert [p.name for p in list_checkpoints(trainer.run_dir)] == ["ckpt-00000004.pt"]


def test_rollback_reloads_the_last_good_checkpoint_with_lower_learning_rates(tmp_path, toy_cfg, nan_once_at):
    cfg = toy_cfg(tmp_path, "train.steps=12", "train.checkpoint_every=4", "train.log_every=1",
                  "train.on_nan=rollback", "train.max_rollbacks=2", "train.rollback_lr_factor=0.25")
    trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
    nan_once_at(trainer, 6)
    result = trainer.train()
    assert result.step == 12 and trainer.rollbacks == 1 and trainer.lr_scale == 0.25
    assert trainer.g.optimizer.param_groups[0]["lr"] == pytest.approx(cfg.g.lr * 0.25)
    rows = [json.loads(line) for line in (result.run_dir / "stats.jsonl").read_text().splitlines()]
    (rollback,) = [r for r in rows if "Rollback/count" in r]
    assert rollback == {"step": 4, "Rollback/count": 1, "Rollback/lr_scale": 0.25, "Rollback/diverged_at": 6}
    assert steps_in(result.run_dir) == list(range(1, 13))  # steps 5-6 of the diverged attempt are gone
    state = load_checkpoint(result.checkpoint)
    assert state["rollbacks"] == 1 and state["lr_scale"] == 0.25  # a resume keeps the lowered rates


def test_rollback_gives_up_after_max_rollbacks(tmp_path, toy_cfg):
    cfg = toy_cfg(tmp_path, "train.steps=12", "train.checkpoint_every=2", "train.on_nan=rollback",
                  "train.max_rollbacks=2")
    trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
    original = trainer._one_step

    def always_nan_after_3():
        stats = original()
        if trainer.step >= 3:
            stats["Loss/G"] = torch.tensor(float("inf"))
        return stats

    trainer._one_step = always_nan_after_3
    with pytest.raises(TrainingDiverged, match="Loss/G"):
        trainer.train()
    assert trainer.rollbacks == 2


def test_a_failed_checkpoint_write_names_the_file_and_free_space_and_keeps_the_previous(tmp_path, monkeypatch, toy_cfg):
    cfg = toy_cfg(tmp_path, "train.steps=4", "train.checkpoint_every=2")
    trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        if trainer.step == 4:
            f.write(b"partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(StorageError, match=r"cannot write .*ckpt-00000004.pt: No space left on device \(.* free "
                                           r"on that disk\); the previous file is unchanged"):
        trainer.train()
    folder = trainer.run_dir / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt-00000002.pt"]  # no temp file left behind
    assert load_checkpoint(folder / "ckpt-00000002.pt")["step"] == 2


def test_a_failed_sample_grid_write_leaves_no_empty_png(tmp_path, monkeypatch, capsys):
    from PIL import Image

    out = tmp_path / "grid.png"

    def failing_save(self, fp, *a, **k):
        Path(fp).write_bytes(b"")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    from steadygan.apps.pictures import save_grid

    with pytest.raises(StorageError, match="grid.png: No space left on device"):
        save_grid(torch.zeros(4, 1, 8, 8), out)
    assert not out.exists() and list(tmp_path.glob(".grid.png*")) == []


def test_a_truncated_newest_checkpoint_is_skipped_with_a_warning(tmp_path, capsys, toy_cfg):
    first = train(toy_cfg(tmp_path, "train.steps=4", "train.checkpoint_every=2"))
    newest = latest_checkpoint(first.run_dir)
    newest.write_bytes(newest.read_bytes()[:1000])
    assert main(["train", "--resume", str(first.run_dir), "--steps", "6", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipping {newest}: not a loadable steadygan checkpoint" in err
    assert "resuming" in err and "from ckpt-00000002.pt (step 2)" in err


def test_a_data_error_leaves_no_run_directory(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--set", "data.name=idx", "--data-dir", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "steadygan", "train", *TOY, "--steps", "100000",
                             "--out", str(tmp_path / "runs"), "--set", "train.checkpoint_every=100000", *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_stats(tmp_path: Path, timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stats in (tmp_path / "runs").glob("*/stats.jsonl"):
            if stats.stat().st_size > 0:
                return stats.parent
        time.sleep(0.1)
    raise AssertionError("the run wrote no stats in time")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_at_a_step_boundary_with_a_resumable_checkpoint(tmp_path, sig):
    proc = _start(tmp_path)
    run = _wait_for_stats(tmp_path)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err  # the shell's convention for a stop by signal N
    assert f"resume with: steadygan train --resume {run}" in out
    ckpt = latest_checkpoint(run)
    step = load_checkpoint(ckpt)["step"]
    assert ckpt.name == f"ckpt-{step:08d}.pt" and steps_in(run)[-1] == step
