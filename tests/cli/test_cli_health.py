"""``steadygan health``: a fabricated run's history in words, its plot, and the exit status on --check."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from steadygan.cli import main


def _write_run(run, variety):
    """A run of 1000 steps whose probe every 100 steps reads ``variety``; grids every 250 steps."""
    rows = [{"step": s, "Logits/real_sign": 0.2, "Logits/fake_sign": -0.2, "Logits/real": 0.5, "Logits/fake": -0.5,
             "Loss/D": 1.2, "Loss/G": 0.9, "Grad/D/norm": 3.0} for s in range(1, 1001)]
    rows += [{"step": 100 * (i + 1), "Health/diversity": v, "Health/diversity_d": v} for i, v in enumerate(variety)]
    run.mkdir()
    (run / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "samples").mkdir()
    for step in (250, 500, 750, 1000):
        Image.fromarray(np.full((8, 8, 3), step // 4, np.uint8)).save(run / "samples" / f"step-{step:08d}.png")


def test_a_collapsing_run_is_told_step_by_step_and_drawn(tmp_path, capsys):
    run = tmp_path / "run"
    _write_run(run, [1.0, 0.9, 0.7, 0.5, 0.33, 0.3, 0.2, 0.12, 0.1, 0.08])
    assert main(["health", str(run), "--check"]) == 3
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{run}: 1000 steps; status now: failing (since step 800)"
    assert out[2].split()[:3] == ["600", "warning", "Health/diversity"]
    assert out[3].split()[:3] == ["800", "failing", "Health/diversity"]
    assert out[4] == "first warning at step 600 (Health/diversity)"
    assert out[5] == f"plot: {run / 'health.png'}"
    with Image.open(run / "health.png") as img:
        assert img.size[0] > 500 and img.size[1] > 300


def test_a_healthy_run_exits_0_on_check_and_the_plot_goes_where_asked(tmp_path, capsys):
    run = tmp_path / "run"
    _write_run(run, [1.0] * 10)
    assert main(["health", str(run), "--check", "-o", str(tmp_path / "h.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{run}: 1000 steps; status now: healthy" and out[1] == "no warning"
    assert (tmp_path / "h.png").is_file() and not (run / "health.png").exists()


def test_without_check_the_exit_is_0_and_no_plot_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    _write_run(run, [0.05] * 10)
    assert main(["health", str(run), "--no-plot"]) == 0
    assert "status now: failing" in capsys.readouterr().out and not (run / "health.png").exists()


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir()])
def test_a_folder_without_stats_is_one_line_error(tmp_path, capsys, make):
    make(tmp_path / "nothing")
    assert main(["health", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no stats.jsonl rows" in err


def test_the_trailing_mean_is_the_mean_of_the_window_ending_at_each_point():
    from steadygan.lab.report.health import _trailing_mean

    values = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(_trailing_mean(values, 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(_trailing_mean(values, 10), [1.0, 2.0, 3.0, 4.0])


def test_a_healed_run_lists_its_remedies(tmp_path, capsys):
    from steadygan.training.recovery import Remedy, record_remedy

    run = tmp_path / "run"
    _write_run(run, [1.0] * 10)
    record_remedy(run, 1, 400, 600, "failing: collapse", Remedy(("d.penalties=[r1:gamma=10]",), 0.5))
    assert main(["health", str(run), "--no-plot"]) == 0
    out = capsys.readouterr().out.splitlines()
    # The failure the rollback cut from the rows is the first warning.
    assert out[-2] == "first warning at step 600 (rolled back)"
    assert out[-1] == (
        "remedy 1: failing at step 600 (failing: collapse); back to step 400 with d.penalties=[r1:gamma=10], "
        "learning rates x0.5")
