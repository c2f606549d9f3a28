"""Evaluation during training: Metric/* rows, the best checkpoint, no effect on the training itself."""

from __future__ import annotations

import json
import math

import pytest

from steadygan.cli import main
from steadygan.errors import ConfigError
from steadygan.training.build import load_config
from steadygan.training.checkpoint import load_checkpoint
from steadygan.training.periodic_eval import main_score, metric_row
from steadygan.training.trainer import train


def rows_of(run_dir):
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def metric_rows(run_dir, prefix="Metric/"):
    return [r for r in rows_of(run_dir) if any(k.startswith(prefix) for k in r)]


@pytest.mark.slow
def test_toy_run_logs_mode_metrics_and_keeps_the_best_checkpoint(tmp_path, toy_cfg):
    result = train(toy_cfg(tmp_path, "train.eval_every=5"))   # 12 steps: evaluated at 5, 10 and the end
    rows = metric_rows(result.run_dir)
    assert [r["step"] for r in rows] == [5, 10, 12]
    for r in rows:
        assert set(r) >= {"elapsed_s", "Metric/modes", "Metric/hq", "Metric/kl", "eval_s"}
        assert 0 <= r["Metric/modes"] <= 8 and 0 <= r["Metric/hq"] <= 1
    best = json.loads((result.run_dir / "checkpoints" / "best.json").read_text())
    # The best row by (modes, hq), the earliest on a tie, is the one recorded and saved.
    expected = max(rows, key=lambda r: (r["Metric/modes"], r["Metric/hq"], -r["step"]))
    assert best["step"] == expected["step"] and best["Metric/modes"] == expected["Metric/modes"]
    assert load_checkpoint(result.run_dir / "checkpoints" / "best.pt")["step"] == expected["step"]


@pytest.mark.slow
def test_evaluation_does_not_change_what_is_trained(tmp_path, toy_cfg, final_state, assert_same_state):
    plain = train(toy_cfg(tmp_path / "a", "train.ema=0.9"))
    scored = train(toy_cfg(tmp_path / "b", "train.ema=0.9", "train.eval_every=3", "train.eval_on=both"))
    assert_same_state(final_state(plain.run_dir), final_state(scored.run_dir))
    rows = metric_rows(scored.run_dir)
    assert rows and all("MetricRaw/modes" in r and "Metric/modes" in r for r in rows)


@pytest.mark.slow
def test_classifier_evaluation_leaves_training_exact_on_cache_miss_and_hit(tmp_path, idx_dir, monkeypatch, image_cfg,
                                                                           final_state, assert_same_state):
    # Building (or loading) the feature network must not draw from the training RNG.
    monkeypatch.setenv("STEADYGAN_CACHE", str(tmp_path / "cache"))
    scored = ("train.eval_every=4", "train.eval_n=40", "train.eval_metrics=[fid]", "train.checkpoint_every=6")
    plain = train(image_cfg(tmp_path / "plain", idx_dir))
    miss = train(image_cfg(tmp_path / "miss", idx_dir, *scored))     # trains and caches the classifier
    hit = train(image_cfg(tmp_path / "hit", idx_dir, *scored))       # loads it
    assert list((tmp_path / "cache").rglob("*.pt"))
    for run in (miss, hit):
        assert_same_state(final_state(plain.run_dir), final_state(run.run_dir))
        assert [r["step"] for r in metric_rows(run.run_dir)] == [4, 6]
        # The final evaluation (step 6, after the in-loop checkpoint of step 6) is in the final checkpoint.
        assert final_state(run.run_dir)["eval"]["last_step"] == 6


def test_too_few_samples_for_a_metric_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="at least 6"):
        load_config(None, ["train.eval_n=5", "train.eval_metrics=[fid,dc]"])
    load_config(None, ["train.eval_n=5", "train.eval_metrics=[fid,pr]"])   # pr needs 4
    out = tmp_path / "runs"
    assert main(["train", "--config", "configs/ring8.yaml", "--steps", "2", "--out", str(out), "--no-progress",
                 "--set", "data.toy_samples=1000", "--set", "model.width=16"]) == 0
    (run,) = out.iterdir()
    capsys.readouterr()
    assert main(["eval", str(run), "--n", "0"]) == 2   # 2-D data: mode counts need one sample
    assert "at least 1 are needed" in capsys.readouterr().err


@pytest.mark.slow
def test_image_run_logs_distribution_metrics(tmp_path, idx_dir, image_cfg):
    cfg = image_cfg(tmp_path, idx_dir, "train.eval_every=3", "train.eval_n=40", "train.eval_extractor=pixels",
                    "train.eval_metrics=[fid,pr]")
    result = train(cfg)
    rows = metric_rows(result.run_dir)
    assert [r["step"] for r in rows] == [3, 6]
    for r in rows:
        assert {"Metric/fid", "Metric/precision", "Metric/recall"} <= set(r) and "Metric/kid" not in r
        assert r["Metric/fid"] >= 0 and 0 <= r["Metric/recall"] <= 1
    best = json.loads((result.run_dir / "checkpoints" / "best.json").read_text())
    assert best["Metric/fid"] == min(r["Metric/fid"] for r in rows)


def test_main_score_directions():
    assert main_score({"Metric/fid": 10.0}, toy=False) > main_score({"Metric/fid": 20.0}, toy=False)
    assert main_score({"Metric/precision": 0.9}, toy=False) > main_score({"Metric/precision": 0.5}, toy=False)
    assert main_score({"Metric/fid": math.nan}, toy=False) is None
    assert main_score({"Metric/recall": 0.5}, toy=False) is None      # no main metric measured
    more_modes = main_score({"Metric/modes": 8.0, "Metric/hq": 0.5}, toy=True)
    assert more_modes > main_score({"Metric/modes": 7.0, "Metric/hq": 0.99}, toy=True)
    assert main_score({"Metric/modes": 8.0, "Metric/hq": 0.9}, toy=True) > more_modes


def test_metric_row_names_are_the_report_names():
    row = metric_row({"metrics": {"modes_recovered": 3, "high_quality_fraction": 0.5, "kl_to_uniform": None,
                                  "fid": 1.5, "kid_std": 0.1}})
    assert row["Metric/modes"] == 3.0 and row["Metric/hq"] == 0.5 and row["Metric/fid"] == 1.5
    assert row["Metric/kid_std"] == 0.1 and math.isnan(row["Metric/kl"])


@pytest.mark.parametrize("bad, match", [
    ("train.eval_on=ema", "needs an EMA"),
    ("train.eval_on=best", "auto, ema, raw or both"),
    ("train.eval_metrics=[fid,isc]", "unknown isc"),
    ("train.eval_every=-1", ">= 0"),
    ("train.eval_extractor=vgg", "vgg"),
])
def test_bad_eval_settings_are_clear_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [bad])


def test_cli_eval_prints_the_floor_and_writes_metrics_json(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--config", "configs/ring8.yaml", "--steps", "4", "--out", str(out), "--no-progress",
                 "--set", "data.toy_samples=1000", "--set", "model.width=16"]) == 0
    (run,) = out.iterdir()
    capsys.readouterr()
    assert main(["eval", str(run), "--n", "500"]) == 0
    printed = capsys.readouterr().out
    assert "real vs real" in printed and "modes_recovered" in printed
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["kind"] == "toy" and saved["samples"]["generated"] == 500
    assert saved["floor"]["modes_recovered"] == 8      # true mixture samples cover every mode


@pytest.mark.slow
def test_conditional_run_logs_intra_class_fid(tmp_path, idx_dir, image_cfg):
    cfg = image_cfg(tmp_path, idx_dir, "model.conditional=true", "train.eval_every=3", "train.eval_n=40",
                    "train.eval_extractor=pixels", "train.eval_metrics=[fid]")
    rows = metric_rows(train(cfg).run_dir)
    assert [r["step"] for r in rows] == [3, 6]
    # pixels has no classifier: intra-class FID is logged, class agreement is not.
    assert all("Metric/intra_fid" in r and r["Metric/intra_fid"] >= 0 and "Metric/class_agreement" not in r
               for r in rows)
