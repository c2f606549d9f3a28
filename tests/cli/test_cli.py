"""The command line end to end on tiny data: train, resume, sample, methods, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from steadygan.cli import main
from steadygan.core.clipping import CLIPPERS
from steadygan.core.losses import LOSSES
from steadygan.core.penalties import CLASS_LOGITS, PAIRED_TARGET, PENALTIES, TRANSLATE
from steadygan.models import MODELS

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
TOY_DATA = ["--set", "data.toy_samples=1000", "--set", "data.batch_size=32", "--no-progress"]
TOY = [*TOY_DATA, "--set", "model.width=16", "--set", "model.depth=2"]  # a small MLP pair


def only_run(out: Path) -> Path:
    (run,) = sorted(out.iterdir())
    return run


def assert_run_outputs(run: Path, steps: int) -> None:
    assert (run / "checkpoints" / f"ckpt-{steps:08d}.pt").exists()
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == steps and "Loss/D" in rows[-1]
    assert (run / "samples" / f"step-{steps:08d}.png").exists()


def test_train_on_tiny_idx_then_sample(tmp_path, idx_dir, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--set", "data.name=idx", "--data-dir", str(idx_dir), "--steps", "3",
                 "--out", str(out), "--set", "data.batch_size=16", "--set", "model.width=8",
                 "--set", "train.ema=0.9", "--no-progress"]) == 0
    run = only_run(out)
    assert_run_outputs(run, 3)
    printed = capsys.readouterr().out
    assert f"samples: {run}/samples/step-00000003.png" in printed
    grid = tmp_path / "grid.png"
    assert main(["sample", str(run), "-n", "16", "-o", str(grid)]) == 0
    from PIL import Image
    with Image.open(grid) as img:
        assert img.size == (2 * (4 * 30 + 2), 2 * (4 * 30 + 2))  # 4x4 grid of 28 px + 2 px gaps, x2
    assert "EMA generator" in capsys.readouterr().out


@pytest.mark.slow
def test_train_on_ring8_and_sample_scatter(tmp_path):
    out = tmp_path / "runs"
    assert main(["train", "--config", "configs/ring8.yaml", "--steps", "4", "--out", str(out), *TOY]) == 0
    run = only_run(out)
    assert_run_outputs(run, 4)
    assert main(["sample", str(run), "-n", "100", "-o", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.parametrize("penalty", PENALTIES.names())
def test_every_penalty_runs_by_name(tmp_path, idx_dir, penalty):
    factory = PENALTIES.get(penalty).factory
    player = "d" if "d" in factory.players else "g"
    runs_on = {  # terms of one kind of run: a paired translation, a CycleGAN, a class-conditional one
        PAIRED_TARGET: ["data.name=edges2fashion", "model.arch=pix2pix", "model.width=8", "data.batch_size=8"],
        TRANSLATE: ["data.name=sneakers2boots", "model.arch=cyclegan", "model.width=8", "data.batch_size=4"],
        CLASS_LOGITS: ["data.name=idx", "model.conditional=true", "model.width=8", "data.batch_size=8"]}
    for need, sets in runs_on.items():
        if need in factory.needs:
            data = ["--data-dir", str(idx_dir), *(x for item in sets for x in ("--set", item))]
            assert main(["train", "--steps", "2", "--out", str(tmp_path), "--set", f"{player}.penalties=[{penalty}]",
                         "--no-progress", *data]) == 0
            return
    assert main(["train", "--config", "configs/ring8.yaml", "--steps", "2", "--out", str(tmp_path),
                 "--set", f"{player}.penalties=[{penalty}]", *TOY]) == 0


@pytest.mark.parametrize("clipper", CLIPPERS.names())
def test_every_clipper_runs_by_name(tmp_path, clipper):
    assert main(["train", "--config", "configs/ring8.yaml", "--steps", "2", "--out", str(tmp_path),
                 "--set", f"d.clip={clipper}", "--set", f"g.clip={clipper}", *TOY]) == 0


@pytest.mark.parametrize("loss", LOSSES.names())
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_every_loss_and_optimizer_runs(tmp_path, loss, optimizer):
    # ring8.yaml sets Adam's betas, which another optimiser does not take: unset them.
    unset = [] if optimizer == "adam" else ["--set", "d.betas=null"]
    assert main(["train", "--config", "configs/ring8.yaml", "--steps", "2", "--out", str(tmp_path),
                 "--set", f"loss={loss}", "--set", f"d.optimizer={optimizer}", *unset, *TOY]) == 0


def test_an_option_the_optimizer_does_not_take_is_an_error(capsys):
    assert main(["train", "--config", "configs/ring8.yaml", "--set", "d.optimizer=sgd"]) == 2
    assert "d.betas does not apply to optimizer 'sgd'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in CONFIGS if "ring8" not in p.name], ids=lambda p: p.stem)
def test_every_shipped_config_runs_two_steps(tmp_path, idx_dir, path):
    image = "grid25" not in path.name
    toy = TOY if "pacgan" not in path.name else TOY_DATA  # PacGAN's networks have fixed sizes
    # paired: edge maps of the same IDX images; unpaired: two of its classes
    name = next((n for n in ("edges2fashion", "sneakers2boots") if n in path.name), "idx")
    data = ["--set", f"data.name={name}", "--data-dir", str(idx_dir), "--set", "data.batch_size=8"] if image else toy
    assert main(["train", "--config", str(path), "--steps", "2", "--out", str(tmp_path), "--time", "600",
                 "--set", "train.sample_every=1000", "--no-progress", *data]) == 0


def test_every_model_listed_by_methods(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in [*LOSSES.names(), *PENALTIES.names(), *CLIPPERS.names(), *MODELS.names(), "fashion-mnist", "ring8"]:
        assert f"  {name} " in out


@pytest.mark.slow
def test_resume_refuses_changed_config_then_continues(tmp_path):
    out = tmp_path / "runs"
    assert main(["train", "--config", "configs/ring8.yaml", "--steps", "3", "--out", str(out), *TOY]) == 0
    run = only_run(out)
    assert main(["train", "--resume", str(run), "--set", "loss=hinge", "--no-progress"]) == 2
    assert main(["train", "--resume", str(run), "--steps", "5", "--no-progress"]) == 0
    assert_run_outputs(run, 5)
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["train", "--set", "train.stepz=3"]) == 2
    assert main(["train", "--set", "data.name=idx", "--data-dir", str(tmp_path / "none"), "--no-progress"]) == 2
    assert main(["sample", str(tmp_path)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("steadygan ") for e in errors)
    assert "valid keys" in errors[0] and "no such folder" in errors[1] and "no checkpoint" in errors[2]


def test_corrupt_checkpoint_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "checkpoints" / "ckpt-00000001.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"not a checkpoint")
    assert main(["sample", str(tmp_path)]) == 2
    assert "not a loadable steadygan checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_python_dash_m_help():
    result = subprocess.run([sys.executable, "-m", "steadygan", "train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "examples:" in result.stdout and "--resume" in result.stdout


@pytest.mark.slow
def test_conditional_run_sample_by_class_complete_and_fine_tune(tmp_path, idx_dir, capsys):
    from PIL import Image

    out = tmp_path / "runs"
    common = ["--set", "data.name=idx", "--data-dir", str(idx_dir), "--set", "data.batch_size=16",
              "--set", "model.width=8", "--set", "model.z_dim=8", "--no-progress"]
    assert main(["train", "--config", "configs/conditional.yaml", "--steps", "2", "--out", str(out), *common,
                 "--set", "train.time=null"]) == 0
    run = only_run(out)
    k = 10  # the fixture's labels are 0..9
    with Image.open(run / "samples" / "step-00000002.png") as img:  # 10 rows of 8 (train.samples: 80)
        assert img.size == (2 * (8 * 30 + 2), 2 * (k * 30 + 2))
    grid = tmp_path / "rows.png"
    assert main(["sample", str(run), "-n", "20", "-o", str(grid)]) == 0
    assert "10 classes x 2 samples" in capsys.readouterr().out
    with Image.open(grid) as img:
        assert img.size == (2 * (2 * 30 + 2), 2 * (k * 30 + 2))
    assert main(["sample", str(run), "--class", "3", "-n", "4", "-o", str(tmp_path / "c3.png")]) == 0
    assert "4 samples of class 3" in capsys.readouterr().out
    assert main(["sample", str(run), "--class", "10", "-o", str(tmp_path / "x.png")]) == 2
    assert "--class must be in 0..9" in capsys.readouterr().err

    strip = tmp_path / "strip.png"
    assert main(["complete", str(run), "--test", "3", "--steps", "3", "--restarts", "1", "-o",
                 str(tmp_path / "done.png"), "--strip", str(strip)]) == 0
    assert "mean absolute error on the masked pixels" in capsys.readouterr().out
    with Image.open(strip) as img:
        assert img.size == (2 * (3 * 30 + 2), 2 * (3 * 30 + 2))  # masked / completed / original
    assert main(["complete", str(run), "--test", "2", "--image", "x.png"]) == 2
    assert "exactly one of" in capsys.readouterr().err

    assert main(["train", "--config", "configs/conditional.yaml", "--steps", "1", "--out", str(out), *common,
                 "--set", "train.time=null", "--init-from", str(run)]) == 0
    # Without a config, the source's networks (conditional); asked for other ones, the setting is named.
    assert main(["train", "--steps", "1", "--out", str(out), *common, "--init-from", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--steps", "1", "--out", str(out), *common, "--init-from", str(run),
                 "--set", "model.conditional=false"]) == 2
    assert "(model.conditional=True there, False here)" in capsys.readouterr().err


def test_sample_class_on_an_unconditional_run_is_an_error(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--config", "configs/ring8.yaml", "--steps", "1", "--out", str(out), *TOY]) == 0
    assert main(["sample", str(only_run(out)), "--class", "1"]) == 2
    assert "is unconditional" in capsys.readouterr().err


@pytest.mark.slow
def test_a_reader_that_closes_the_pipe_ends_methods_quietly():
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m steadygan methods | head -1", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.startswith("losses") and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_a_distributed_timeout_must_be_a_positive_number_of_seconds(value, capsys):
    assert main(["train", "--dist-timeout", value, "--steps", "1"]) == 2
    assert capsys.readouterr().err.startswith("steadygan train: error: --dist-timeout must be > 0 seconds (got ")


def test_sample_complete_and_eval_check_their_arguments_alike(tmp_path, idx_dir, capsys):
    import torch

    out = tmp_path / "runs"
    assert main(["train", "--set", "data.name=idx", "--data-dir", str(idx_dir), "--steps", "1", "--set",
                 "data.batch_size=16", "--set", "model.width=8", "--set", "model.z_dim=8", "--out", str(out),
                 "--no-progress"]) == 0
    run = str(only_run(out))
    capsys.readouterr()

    def error(*argv: str) -> str:
        assert main(list(argv)) == 2
        return capsys.readouterr().err.strip()

    if not torch.cuda.is_available():
        for command in (["complete", run, "--test", "2"], ["eval", run]):
            assert error(*command, "--device", "cuda") == (f"steadygan {command[0]}: error: --device cuda but CUDA is "
                                                           "not available here; use --device cpu or auto")
    assert error("complete", run, "--test", "2", "--device", "gpu") == \
        "steadygan complete: error: --device gpu: not a device; use auto, cpu, cuda or cuda:N"
    assert error("complete", run, "--test", "2", "--class", "3") == \
        f"steadygan complete: error: {run} is unconditional: --class needs a run trained with model.conditional=true"
    for command in (["complete", run, "--test", "2"], ["sample", run]):
        assert error(*command, "--scale", "0") == f"steadygan {command[0]}: error: --scale must be >= 1 (got 0)"
    assert error("complete", run, "--test", "0") == "steadygan complete: error: --test must be >= 1 (got 0)"
    assert error("complete", run, "--test", "2", "--restarts", "0") == \
        "steadygan complete: error: --restarts must be >= 1 (got 0)"
    assert error("complete", run, "--test", "2", "--prior-weight", "-1") == \
        "steadygan complete: error: --prior-weight must be a finite number >= 0 (got -1)"
    # A request beyond the test split (48 images) is said, not silently cut; missing folders are created.
    done = tmp_path / "a" / "b" / "done.png"
    assert main(["complete", run, "--test", "100000", "--steps", "1", "--restarts", "1", "-o", str(done)]) == 0
    assert ("note: the test split of idx has 48 images; completing all of them (--test 100000 asked for more)"
            in capsys.readouterr().err) and done.is_file()
    grid = tmp_path / "c" / "d" / "grid.png"
    assert main(["sample", run, "-n", "4", "-o", str(grid)]) == 0 and grid.is_file()


def test_a_relative_data_dir_is_stored_as_the_folder_it_names(tmp_path, idx_dir, monkeypatch):
    import yaml

    monkeypatch.chdir(idx_dir.parent)
    assert main(["train", "--set", "data.name=idx", "--data-dir", idx_dir.name, "--steps", "1", "--no-progress",
                 "--out", str(tmp_path / "runs"), "--set", "model.width=8", "--set", "data.batch_size=8",
                 "--set", "train.sample_every=1000"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["root"] == str(idx_dir.resolve())
