"""What a resume continues from: its own, loadable, finite checkpoints; config changes applied
or refused; and a run killed at random moments ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from steadygan.cli import main
from steadygan.errors import CheckpointError
from steadygan.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from steadygan.training.trainer import train

ROOT = Path(__file__).resolve().parents[2]


def test_a_checkpoint_copied_from_another_run_is_refused_naming_both(tmp_path, capsys, toy_cfg):
    mine = train(toy_cfg(tmp_path, "train.steps=2"))
    other = train(toy_cfg(tmp_path, "train.steps=3", "model.width=8", "data.name=grid25"))
    foreign = mine.run_dir / "checkpoints" / "ckpt-00000003.pt"
    shutil.copy(latest_checkpoint(other.run_dir), foreign)
    assert main(["train", "--resume", str(mine.run_dir), "--steps", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{foreign} does not belong to {mine.run_dir}" in err and "data.name" in err and "model.width" in err
    assert (mine.run_dir / "config.yaml").read_text().count("ring8") == 1  # its config was not rewritten


def test_the_step_inside_must_match_the_file_name(tmp_path, toy_cfg):
    run = train(toy_cfg(tmp_path, "train.steps=2")).run_dir
    renamed = run / "checkpoints" / "ckpt-00000300.pt"
    shutil.copy(latest_checkpoint(run), renamed)
    with pytest.raises(CheckpointError, match="holds step 2 but its name says step 300"):
        load_checkpoint(renamed)


def test_checkpoints_without_a_config_or_with_other_shapes_are_one_line_errors(tmp_path, capsys, toy_cfg):
    run = train(toy_cfg(tmp_path, "train.steps=2")).run_dir
    ckpt = latest_checkpoint(run)
    payload = load_checkpoint(ckpt)
    broken = {k: v for k, v in payload.items() if k != "config"}
    torch.save(broken, ckpt)
    with pytest.raises(CheckpointError, match="not a complete steadygan checkpoint \\(no config\\)"):
        load_checkpoint(ckpt)
    payload["generator"] = {k: torch.zeros(3, 3) if k == "net.0.weight" else v
                            for k, v in payload["generator"].items()}
    torch.save(payload, ckpt)
    assert main(["train", "--resume", str(run), "--steps", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "layer 'net.0.weight' has shape (3, 3) there but (16, 4) here" in err and "Traceback" not in err


@pytest.mark.slow
def test_an_allowed_config_change_reaches_the_optimisers_and_identity_keys_never_change(tmp_path, capsys, toy_cfg):
    run = train(toy_cfg(tmp_path, "train.steps=2")).run_dir
    assert main(["train", "--resume", str(run), "--steps", "3", "--no-progress", "--set", "g.lr=0.0005"]) == 2
    assert "--allow-config-change" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--steps", "3", "--no-progress", "--set", "g.lr=0.0005",
                 "--allow-config-change"]) == 0
    state = load_checkpoint(latest_checkpoint(run))
    assert state["opt_g"]["param_groups"][0]["lr"] == 0.0005 and state["opt_d"]["param_groups"][0]["lr"] == 2e-4
    assert main(["train", "--resume", str(run), "--steps", "4", "--no-progress", "--set", "model.width=32",
                 "--allow-config-change"]) == 2
    assert "cannot resume" in capsys.readouterr().err


def test_skipped_checkpoints_are_moved_aside_and_never_rotate_the_good_ones_away(tmp_path, capsys, toy_cfg):
    run = train(toy_cfg(tmp_path, "train.steps=4", "train.checkpoint_every=2", "train.keep_checkpoints=1")).run_dir
    newest = latest_checkpoint(run)
    good = load_checkpoint(newest)
    newest.write_bytes(newest.read_bytes()[:500])
    torch.save(good | {"step": 2}, run / "checkpoints" / "ckpt-00000002.pt")  # an older good one
    assert main(["train", "--resume", str(run), "--steps", "6", "--no-progress"]) == 0
    assert "moved aside to ckpt-00000004.pt.skipped" in capsys.readouterr().err
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-00000006.pt"]
    assert (run / "checkpoints" / "ckpt-00000004.pt.skipped").exists()


def test_the_optimizer_type_cannot_change_on_resume(tmp_path, capsys, toy_cfg):
    run = train(toy_cfg(tmp_path, "train.steps=2")).run_dir
    assert main(["train", "--resume", str(run), "--steps", "3", "--no-progress", "--allow-config-change",
                 "--set", "d.optimizer=sgd", "--set", "d.betas=null"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "another d.optimizer" in err
    (tmp_path / "list.yaml").write_text("- 1\n")
    assert main(["train", "--resume", str(run), "--config", str(tmp_path / "list.yaml"), "--no-progress"]) == 2
    assert "a config is a mapping of sections" in capsys.readouterr().err


def test_a_checkpoint_with_non_finite_values_is_skipped(tmp_path, capsys, toy_cfg):
    run = train(toy_cfg(tmp_path, "train.steps=4", "train.checkpoint_every=2")).run_dir
    newest = latest_checkpoint(run)
    payload = load_checkpoint(newest)
    next(iter(payload["generator"].values())).fill_(float("nan"))
    torch.save(payload, newest)  # as an older release could have written it
    assert main(["train", "--resume", str(run), "--steps", "5", "--no-progress"]) == 0
    assert "holds non-finite values (generator.net.0.weight)" in capsys.readouterr().err


# --- fault injection ------------------------------------------------------------------------

STEPS = 1000  # kills land 1-30 steps into each attempt: all of them stay well inside 1000 steps
KILLS = 12    # each a new process (a second or two of start-up): enough kill points, in CI's time
KILL_CFG = ["--config", "configs/ring8.yaml", "--set", "data.toy_samples=1000", "--set", "data.batch_size=32",
            "--set", "model.width=16", "--set", "model.depth=2", "--set", "train.checkpoint_every=7",
            "--set", "train.log_every=1", "--set", "train.sample_every=1000", "--set", "train.threads=1",
            "--set", "train.keep_checkpoints=2", "--no-progress"]


def _lines(out: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in out.glob("*/stats.jsonl"))


def _run(args: list[str], out: Path, rng: random.Random | None = None) -> None:
    """Run to the end (rng None), or SIGKILL it a random number of steps into training.

    The kill is placed by steps, not seconds, so a faster machine does not finish the run
    before all kills land; a random fraction of one step's time more moves the kill across
    the phases of a step (update, stats flush, checkpoint write).
    """
    before = _lines(out) if out.exists() else 0
    proc = subprocess.Popen([sys.executable, "-m", "steadygan", "train", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if rng is None:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        return
    target, deadline = before + rng.randint(1, 30), time.monotonic() + 60
    first_seen = None
    while time.monotonic() < deadline and proc.poll() is None:
        lines = _lines(out) if out.exists() else 0
        if lines > before and first_seen is None:
            first_seen = (time.monotonic(), lines)
        if lines >= target:
            break
        time.sleep(0.002)
    if first_seen is not None:
        seen_at, seen_lines = first_seen
        per_step = (time.monotonic() - seen_at) / max(_lines(out) - seen_lines, 1)
        time.sleep(rng.uniform(0.0, min(per_step, 0.05)))
    assert proc.poll() is None, "the run ended before it could be killed: make it longer"
    os.kill(proc.pid, signal.SIGKILL)  # no handler runs
    proc.wait(timeout=60)


@pytest.mark.slow
def test_repeated_sigkills_with_resumes_end_exactly_where_an_uninterrupted_run_does(tmp_path, final_state,
                                                                                    assert_same_state):
    straight = tmp_path / "straight"
    _run(KILL_CFG + ["--steps", str(STEPS), "--out", str(straight)], straight)
    (straight_run,) = straight.iterdir()

    killed, rng = tmp_path / "killed", random.Random(0)
    for _ in range(KILLS):
        run = next(killed.iterdir(), None) if killed.exists() else None
        if run is None or not list_checkpoints(run):  # killed before its first checkpoint: a new run
            shutil.rmtree(killed, ignore_errors=True)
            _run(KILL_CFG + ["--steps", str(STEPS), "--out", str(killed)], killed, rng)
        else:
            _run(["--resume", str(run), "--steps", str(STEPS), "--no-progress"], killed, rng)
    run = next(killed.iterdir())
    _run(["--resume", str(run), "--steps", str(STEPS), "--no-progress"], killed)

    assert_same_state(final_state(straight_run), final_state(run))
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "Loss/D" in r] == list(range(1, STEPS + 1))


def test_a_resume_on_another_process_count_names_the_batches_of_both(tmp_path, toy_cfg):
    from steadygan.errors import ConfigError
    from steadygan.training.resume import resume_config

    run = train(toy_cfg(tmp_path, "train.steps=2")).run_dir  # one process, batch 32
    other = tmp_path / "other.yaml"
    other.write_text((run / "config.yaml").read_text().replace("batch_size: 32", "batch_size: 128"))
    with pytest.raises(ConfigError) as exc:
        resume_config(run, str(other), ["train.steps=4"], allow_change=False, world_size=2)
    assert str(exc.value) == (f"{run} trained on 1 process(es) (global batch 32); resume it with as many "
                              "(steadygan train --nproc 1, or torchrun --nproc-per-node), or pass "
                              "--allow-config-change to continue on 2 (global batch 256)")


def test_fine_tuning_takes_the_source_runs_networks_and_names_a_setting_that_differs(tmp_path, capsys, toy_cfg):
    source = train(toy_cfg(tmp_path / "source", "train.steps=2", "model.width=8")).run_dir
    # No model settings given: the source's (an mlp of width 8 on 2-D points), not the defaults (a dcgan).
    args = ["train", "--config", str(ROOT / "configs" / "ring8.yaml"), "--init-from", str(source), "--steps", "2",
            "--set", "data.toy_samples=1000", "--set", "data.batch_size=32", "--out", str(tmp_path / "tuned"),
            "--no-progress"]
    assert main(args) == 2  # ring8.yaml sets the model: z_dim 2, width 128, depth 3
    assert ("train.init_from: " + str(source / "config.yaml") + " was trained with other networks "
            "(model.z_dim=4 there, 2 here; model.width=8 there, 128 here; model.depth=2 there, 3 here); leave "
            "these keys out to take the source's, or start without --init-from") in capsys.readouterr().err
    plain = ["train", "--init-from", str(source), "--set", "data.name=ring8", "--set", "data.toy_samples=1000",
             "--set", "data.batch_size=32", "--steps", "2", "--out", str(tmp_path / "tuned"), "--no-progress"]
    assert main(plain) == 0
    (tuned,) = (tmp_path / "tuned").iterdir()
    model = load_checkpoint(latest_checkpoint(tuned))["config"]["model"]
    assert model == load_checkpoint(latest_checkpoint(source))["config"]["model"]
    assert main([*plain, "--set", "model.z_dim=8"]) == 2
    assert "(model.z_dim=4 there, 8 here)" in capsys.readouterr().err


def test_resume_and_init_from_together_are_refused(tmp_path, capsys, toy_cfg):
    run = train(toy_cfg(tmp_path, "train.steps=2")).run_dir
    assert main(["train", "--resume", str(run), "--init-from", str(run), "--no-progress"]) == 2
    assert capsys.readouterr().err == ("steadygan train: error: --resume continues a run with its own weights; "
                                       "--init-from starts a new one from another run's: give one of them\n")


CLASS_TERM = ["--set", "d.penalties=[aux-classifier:weight=0.1]"]  # builds D's class head


def train_conditional(out: Path, idx_dir: Path, steps: int, *extra: str) -> Path:
    """A tiny conditional run on ``idx_dir`` through the CLI (``extra``: more arguments); its folder."""
    assert main(["train", "--steps", str(steps), "--out", str(out), "--set", "data.name=idx", "--data-dir",
                 str(idx_dir), "--set", "model.conditional=true", "--set", "model.width=8", "--set",
                 "data.batch_size=8", "--no-progress", "--set", "train.time=null", *extra]) == 0
    (run,) = out.iterdir()
    return run


@pytest.mark.parametrize("source_head", [True, False])
def test_fine_tuning_keeps_this_runs_choice_of_class_head(tmp_path, capsys, idx_dir, source_head):
    # D's class head exists only where a penalty classifies (aux-classifier): fine-tuning a run
    # that had one into a config that has none leaves it out, and the other way starts it fresh;
    # every other tensor is the source's.
    from steadygan.training.checkpoint import load_checkpoint as load

    source = train_conditional(tmp_path / "source", idx_dir, 2, *(CLASS_TERM if source_head else []))
    tuned = train_conditional(tmp_path / "tuned", idx_dir, 1, "--init-from", str(source),
                              *([] if source_head else CLASS_TERM), "--set", "d.lr=1e-10", "--set", "g.lr=1e-10")
    err = capsys.readouterr().err
    assert ("class head of" in err and "is left out" in err) if source_head else ("starts fresh" in err)
    before = load(latest_checkpoint(source))["discriminator"]
    after = load(latest_checkpoint(tuned))["discriminator"]
    assert any(k.startswith("class_head.") for k in (before if source_head else after))
    assert not any(k.startswith("class_head.") for k in (after if source_head else before))
    shared = [k for k in before if not k.startswith("class_head.")]
    assert shared and sorted(shared) == sorted(k for k in after if not k.startswith("class_head."))
    for k in shared:  # one Adam step moves a weight by about lr (1e-10): D's weights are the source's
        if "running_" not in k and "num_batches" not in k:  # (BatchNorm's statistics aside)
            assert (before[k] - after[k]).abs().max() < 1e-8, k


@pytest.mark.parametrize("first_has_head", [True, False])
def test_a_resume_that_adds_or_drops_the_class_head_says_so(tmp_path, capsys, idx_dir, first_has_head):
    run = train_conditional(tmp_path / "runs", idx_dir, 2, *(CLASS_TERM if first_has_head else []))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "3", "--allow-config-change",
                 *(["--set", "d.penalties=[]"] if first_has_head else CLASS_TERM)]) == 2
    err = capsys.readouterr().err
    if first_has_head:
        assert "has a class head, which this run's D lacks" in err and "keep that penalty in the config" in err
    else:
        assert "has no class head: this run's D has one" in err and "leave that penalty out" in err
