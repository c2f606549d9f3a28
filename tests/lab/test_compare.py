"""`steadygan compare`: runs every pair, skips finished runs, resumes interrupted ones exactly."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import steadygan.lab.compare as compare
from steadygan.cli import main
from steadygan.cli.lab import add_compare_parser, add_report_parser
from steadygan.errors import ConfigError, TrainingDiverged
from steadygan.training.checkpoint import list_checkpoints, load_checkpoint
from steadygan.training.tracking import Diverged

RING8 = Path(__file__).resolve().parents[2] / "configs" / "ring8.yaml"
SMALL = ["data.toy_samples=1000", "data.batch_size=32", "model.width=16", "model.depth=2",
         "train.checkpoint_every=2", "train.sample_every=2", "train.log_every=1"]
VARIANTS = ["baseline", "clip-value:eps=0.01"]


def lab_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steadygan")
    sub = parser.add_subparsers(dest="command", required=True)
    add_compare_parser(sub)
    add_report_parser(sub)
    return parser


def run_cli(*argv: str) -> int:
    args = lab_parser().parse_args([str(a) for a in argv])
    return args.func(args)


def again(out, steps=4, **kwargs):
    return compare.run_compare(RING8, SMALL, VARIANTS, 2, steps, None, out, **kwargs)


def snapshot(out: Path) -> dict[str, int]:
    """mtime of every checkpoint and stats file of the lab, to prove nothing was retrained."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns
            for p in sorted((out / "runs").rglob("*")) if p.suffix in (".pt", ".jsonl")}


@pytest.fixture
def spy(monkeypatch):
    """Record every train() call the compare makes: (run directory name, step resumed from)."""
    calls = []
    real = compare.train

    def recording(cfg, run_dir=None, resume=None, **options):
        calls.append((Path(run_dir).name, resume["step"] if resume else None))
        return real(cfg, run_dir=run_dir, resume=resume, **options)

    monkeypatch.setattr(compare, "train", recording)
    return calls


@pytest.mark.slow
def test_compare_reports_skips_finished_and_resumes_interrupted(tmp_path, spy):
    out = tmp_path / "lab"
    assert run_cli("compare", "--config", RING8, "--variants", *VARIANTS, "--seeds", "2", "--steps", "4",
                   "--set", *SMALL, "-o", out) == 0
    assert sorted(name for name, _ in spy) == ["baseline-s0", "baseline-s1", "clip-value-eps-0.01-s0",
                                                "clip-value-eps-0.01-s1"]
    report = out / "report"
    for name in ("report.md", "report.html", "losses.png", "gradients.png", "samples.png"):
        assert (report / name).stat().st_size > 0, name
    assert "| clip-value:eps=0.01 | 2 |" in (report / "report.md").read_text()
    plan = yaml.safe_load((out / "compare.yaml").read_text())
    assert plan["seeds"] == [0, 1] and plan["steps"] == 4 and plan["baseline"] == "baseline"
    assert "trained at a time" not in (report / "report.md").read_text()
    assert [v["spec"] for v in plan["variants"]] == VARIANTS
    run = out / "runs" / "clip-value-eps-0.01-s1"
    marker = json.loads((run / "done.json").read_text())
    assert marker["status"] == "finished" and marker["step"] == 4 and marker["stopped"] == "steps"
    assert marker["parallel"] == 1
    assert load_checkpoint(list_checkpoints(run)[-1])["config"]["d"]["clip"] == {"name": "value", "eps": 0.01}

    # Second invocation: every run is finished, nothing trains, no file is rewritten.
    before = snapshot(out)
    spy.clear()
    again(out)
    assert spy == [] and snapshot(out) == before

    # Simulate a kill after the step-2 checkpoint with step 3 already logged: no marker, no
    # step-4 checkpoint, a stale stats row. The compare must resume from step 2, not restart.
    straight = load_checkpoint(list_checkpoints(run)[-1])
    (run / "done.json").unlink()
    list_checkpoints(run)[-1].unlink()
    lines = (run / "stats.jsonl").read_text().splitlines()
    (run / "stats.jsonl").write_text("\n".join(lines[:3]) + "\n")
    ckpt2 = list_checkpoints(run)[-1]
    assert ckpt2.name == "ckpt-00000002.pt"
    mtime2 = ckpt2.stat().st_mtime_ns
    again(out)
    assert spy == [("clip-value-eps-0.01-s1", 2)]
    assert ckpt2.stat().st_mtime_ns == mtime2
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert (run / "stats.jsonl").read_text().splitlines()[:2] == lines[:2]
    resumed = load_checkpoint(list_checkpoints(run)[-1])
    assert resumed["step"] == 4
    for name, tensor in straight["generator"].items():
        assert torch.equal(tensor, resumed["generator"][name])  # exact resume
    assert json.loads((run / "done.json").read_text())["status"] == "finished"

    # A larger step budget extends every finished run from its last checkpoint, when asked for.
    spy.clear()
    with pytest.raises(ConfigError, match=r"\(steps: 4 -> 6\); pass --extend"):
        again(out, steps=6)
    assert spy == []
    again(out, steps=6, extend=True)
    assert sorted(spy) == [("baseline-s0", 4), ("baseline-s1", 4), ("clip-value-eps-0.01-s0", 4),
                           ("clip-value-eps-0.01-s1", 4)]

    # A different config in the same folder is refused rather than mixed into the report.
    with pytest.raises(ConfigError, match="model.width"):
        compare.run_compare(RING8, [*SMALL, "model.width=8"], VARIANTS, 2, 6, None, out, extend=True)


def test_a_lab_folder_used_again_with_other_arguments_is_refused_and_left_as_it_was(tmp_path, spy, capsys):
    out = tmp_path / "lab"
    assert run_cli("compare", "--config", RING8, "--variants", *VARIANTS, "--seeds", "2", "--steps", "3",
                   "--set", *SMALL, "-o", out) == 0
    plan = (out / "compare.yaml").read_text()
    before = snapshot(out)
    spy.clear()
    # Fewer variants, a smaller budget: the report would count 3-step runs as finished 2-step ones.
    with pytest.raises(ConfigError) as exc:
        compare.run_compare(RING8, SMALL, ["baseline"], 2, 2, None, out)
    assert str(exc.value) == (f"{out} holds a lab planned with other arguments (variants: clip-value:eps=0.01 "
                              "would be dropped; steps: 3 -> 2); run `steadygan compare` with its arguments to "
                              "resume it, or give another output folder")
    with pytest.raises(ConfigError, match=r"steps: 3 -> 2\)"):  # --extend never lowers a budget
        compare.run_compare(RING8, SMALL, VARIANTS, 2, 2, None, out, extend=True)
    with pytest.raises(ConfigError, match=r"seeds: 2 added\); pass --extend"):
        compare.run_compare(RING8, SMALL, VARIANTS, 3, 3, None, out)
    assert spy == [] and snapshot(out) == before and (out / "compare.yaml").read_text() == plan
    # The same arguments resume; --extend adds a variant and a seed, and trains only the new runs.
    again(out, steps=3)
    assert spy == []
    compare.run_compare(RING8, SMALL, [*VARIANTS, "r1:gamma=0.1"], 3, 3, None, out, extend=True)
    assert sorted(name for name, _ in spy) == ["baseline-s2", "clip-value-eps-0.01-s2", "r1-gamma-0.1-s0",
                                                "r1-gamma-0.1-s1", "r1-gamma-0.1-s2"]
    extended = yaml.safe_load((out / "compare.yaml").read_text())
    assert extended["seeds"] == [0, 1, 2] and [v["spec"] for v in extended["variants"]] == [*VARIANTS, "r1:gamma=0.1"]
    assert len(extended["runs"]) == 9


def test_every_argument_is_checked_before_anything_is_created(tmp_path, spy, capsys):
    out = tmp_path / "lab"
    code = main(["compare", "--config", str(RING8), "--variants", *VARIANTS, "--seeds", "1", "--steps", "2",
                 "--set", *SMALL, "--metric", "Metric/bogus", "-o", str(out)])
    assert code == 2 and spy == [] and not out.exists()
    assert capsys.readouterr().err.startswith("steadygan compare: error: no known direction for Metric/bogus;")


@pytest.mark.slow
def test_diverged_run_is_recorded_and_the_compare_goes_on(tmp_path, monkeypatch, spy):
    real = compare.train

    def diverging(cfg, run_dir=None, resume=None, **options):
        if Path(run_dir).name.startswith("r1"):
            raise TrainingDiverged("training diverged at step 3: Loss/D = nan") from Diverged(3, "Loss/D", float("nan"))
        return real(cfg, run_dir=run_dir, resume=resume, **options)

    monkeypatch.setattr(compare, "train", diverging)
    out = tmp_path / "lab"
    md = compare.run_compare(RING8, SMALL, ["r1:gamma=1", "baseline"], [7], 2, None, out)
    marker = json.loads((out / "runs" / "r1-gamma-1-s7" / "done.json").read_text())
    assert marker["status"] == "diverged" and marker["step"] == 3 and "Loss/D = nan" in marker["message"]
    assert json.loads((out / "runs" / "baseline-s7" / "done.json").read_text())["status"] == "finished"
    text = md.read_text()
    assert "| r1:gamma=1 | 1 | 1/1 |" in text and "| baseline | 1 | 0/1 |" in text
    # Diverged runs are final: a rerun does not try again.
    monkeypatch.setattr(compare, "train", lambda *a, **k: pytest.fail("retrained"))
    compare.run_compare(RING8, SMALL, ["r1:gamma=1", "baseline"], [7], 2, None, out)


@pytest.mark.slow
def test_jobs_run_in_spawned_processes(tmp_path):
    out = tmp_path / "lab"
    compare.run_compare(RING8, SMALL, ["baseline", "agc"], [0], 2, None, out, jobs=2)
    for name in ("baseline-s0", "agc-s0"):
        marker = json.loads((out / "runs" / name / "done.json").read_text())
        assert marker["status"] == "finished" and marker["step"] == 2 and marker["parallel"] == 2
    assert (out / "report" / "report.html").exists()
    assert "up to 2 runs trained at a time" in (out / "report" / "report.md").read_text()
    # A later sequential call that only skips finished runs does not erase what they shared.
    compare.run_compare(RING8, SMALL, ["baseline", "agc"], [0], 2, None, out, jobs=1)
    assert "up to 2 runs trained at a time" in (out / "report" / "report.md").read_text()


def test_bad_specs_fail_before_anything_trains(tmp_path, spy):
    with pytest.raises(ConfigError, match="unknown variant 'r9'"):
        compare.run_compare(RING8, SMALL, ["baseline", "r9"], 1, 2, None, tmp_path / "lab")
    with pytest.raises(ConfigError, match="unknown key"):
        compare.run_compare(RING8, [*SMALL, "model.wdith=3"], ["baseline"], 1, 2, None, tmp_path / "lab")
    assert spy == [] and not (tmp_path / "lab").exists()


def test_help_has_examples(capsys):
    for command in ("compare", "report"):
        with pytest.raises(SystemExit):
            lab_parser().parse_args([command, "--help"])
        assert "examples:" in capsys.readouterr().out


def test_is_done_follows_the_budget():
    from steadygan.training.build import load_config

    cfg = lambda *s: load_config(None, ["data.name=ring8", "model.arch=mlp", *s])  # noqa: E731
    finished = {"status": "finished", "step": 100, "stopped": "steps", "time_budget": None}
    assert compare.is_done(finished, cfg("train.steps=100"))
    assert not compare.is_done(finished, cfg("train.steps=200"))          # a larger budget resumes
    timed = {"status": "finished", "step": 40, "stopped": "time", "time_budget": 60.0}
    assert compare.is_done(timed, cfg("train.steps=100", "train.time=60"))
    assert not compare.is_done(timed, cfg("train.steps=100", "train.time=120"))
    assert not compare.is_done(timed, cfg("train.steps=100"))              # no time limit any more
    assert compare.is_done({"status": "diverged", "step": 3}, cfg("train.steps=100"))
    assert not compare.is_done(None, cfg())


def test_ctrl_c_leaves_the_run_resumable(tmp_path, monkeypatch):
    from steadygan.training.trainer import TrainResult

    monkeypatch.setattr(compare, "train", lambda cfg, run_dir=None, resume=None, **options:
                        TrainResult(run_dir, 1, "interrupted", None, None, signal.SIGINT))
    out = tmp_path / "lab"
    assert run_cli("compare", "--config", RING8, "--variants", "baseline", "--seeds", "1", "--steps", "4",
                   "--set", *SMALL, "-o", out) == 128 + signal.SIGINT
    assert not (out / "runs" / "baseline-s0" / "done.json").exists()


@pytest.mark.slow
def test_sigterm_to_a_parallel_compare_reaches_its_workers_which_checkpoint(tmp_path):
    """SIGTERM reaches the compare process only; it must pass it on, so each worker stops at
    a step boundary with a checkpoint (no finished-marker), and the compare exits 128 + SIGTERM."""
    out = tmp_path / "lab"
    sets = [a for s in SMALL if not s.startswith("train.checkpoint_every") for a in ("--set", s)]
    proc = subprocess.Popen([sys.executable, "-m", "steadygan", "compare", "--config", str(RING8), "--variants",
                             "baseline", "--seeds", "2", "--steps", "100000", "-j", "2", *sets,
                             "--set", "train.checkpoint_every=100000", "-o", str(out)],
                            cwd=RING8.parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        _terminate_and_check(proc, out)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole session: no worker keeps training in the background
        except ProcessLookupError:
            pass


def _terminate_and_check(proc: subprocess.Popen, out: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        stats = list((out / "runs").glob("*/stats.jsonl")) if (out / "runs").exists() else []
        if len(stats) == 2 and all(p.stat().st_size > 0 for p in stats):
            break
        time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("the workers did not start in time")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "compare interrupted; run the same command again to resume" in err
    for run in (out / "runs").iterdir():
        assert not (run / "done.json").exists()
        ckpt = list_checkpoints(run)[-1]
        assert 0 < load_checkpoint(ckpt)["step"] < 100000  # written at the interruption, not at the budget
