"""Report aggregation against hand-computed values on fabricated lab folders (no training)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from steadygan.errors import ConfigError
from steadygan.lab.report import (
    COLLAPSE_RULE_VERSION,
    COLLAPSE_SHARE_MARGIN,
    Run,
    collapse_reason,
    divergence_reason,
    final_value,
    load_runs,
    mean_std,
    parse_metric,
    pick_main_metric,
    plots,
    read_stats,
    step_time,
    summarize,
    time_to_threshold,
    write_report,
)

NAN = float("nan")


def step_row(step, elapsed, loss_d=1.0, loss_g=0.5):
    return {"step": step, "elapsed_s": elapsed, "Loss/D": loss_d, "Loss/G": loss_g, "Grad/D/norm": 0.5 + step / 10,
            "Grad/D/clipped": 0.0, "Grad/G/norm": 0.1, "Grad/G/clipped": 0.25}


def eval_row(step, elapsed, **metrics):
    return {"step": step, "elapsed_s": elapsed, **{f"Metric/{k}": v for k, v in metrics.items()}}


def write_run(lab, slug, seed, rows, marker=None, data="ring8"):
    run = lab / "runs" / f"{slug}-s{seed}"
    run.mkdir(parents=True)
    (run / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"name": data}}))
    if marker is not None:
        (run / "done.json").write_text(json.dumps(marker))
    return run


def write_plan(lab, runs, baseline="baseline"):
    plan = {"base_config": "configs/ring8.yaml", "base_overrides": [], "baseline": baseline, "seeds": [0, 1],
            "steps": 5, "time": None,
            "variants": [{"spec": v, "label": v, "slug": v, "overrides": []}
                         for v in dict.fromkeys(v for v, _ in runs)],
            "runs": [{"variant": v, "seed": s, "dir": f"runs/{v}-s{s}"} for v, s in runs]}
    (lab / "compare.yaml").write_text(yaml.safe_dump(plan))


@pytest.fixture
def toy_lab(tmp_path):
    """Two variants x two seeds of 2-D runs, numbers chosen to be checked by hand."""
    lab = tmp_path / "lab"
    done = {"status": "finished", "step": 5, "stopped": "steps"}
    # baseline s0: 0.1 s per step; modes 3 -> 6 -> 7.
    write_run(lab, "baseline", 0, [step_row(i, 0.1 * i) for i in range(1, 6)]
              + [eval_row(2, 0.2, modes=3), eval_row(4, 0.4, modes=6), eval_row(5, 0.5, modes=7)], done)
    # baseline s1: one 0.5 s spike (a sample grid) that the median ignores; modes 5 -> 8 -> 5.
    write_run(lab, "baseline", 1, [step_row(i, e) for i, e in zip(range(1, 6), (0.0, 0.1, 0.2, 0.7, 0.8))]
              + [eval_row(2, 0.1, modes=5), eval_row(4, 0.75, modes=8), eval_row(5, 0.8, modes=5)], done)
    # r1 s0: 0.2 s per step; ends on one mode (collapsed).
    write_run(lab, "r1", 0, [step_row(i, 0.2 * i) for i in range(1, 6)] + [eval_row(5, 1.0, modes=1)], done)
    # r1 s1: 0.3 s per step, NaN at step 3, recorded as diverged.
    write_run(lab, "r1", 1, [step_row(1, 0.3), step_row(2, 0.6), step_row(3, 0.9, loss_d=NAN)],
              {"status": "diverged", "step": 3, "stopped": "diverged", "message": "Loss/D = nan"})
    write_plan(lab, [("baseline", 0), ("baseline", 1), ("r1", 0), ("r1", 1)])
    return lab


def test_summary_matches_hand_computed_values(toy_lab):
    runs = load_runs(toy_lab)
    assert [(r.variant, r.seed) for r in runs] == [("baseline", 0), ("baseline", 1), ("r1", 0), ("r1", 1)]
    assert pick_main_metric(runs) == "Metric/modes"
    base, r1 = summarize(runs, "Metric/modes", higher=True, threshold=6, baseline="baseline")

    assert base.runs == 2
    assert base.final_mean == pytest.approx(6.0) and base.final_std == pytest.approx(math.sqrt(2))  # 7, 5
    assert base.best_mean == pytest.approx(7.5) and base.best_std == pytest.approx(math.sqrt(0.5))  # 7, 8
    assert base.reached == 2
    assert base.steps_to_threshold == pytest.approx(4.0)           # both at step 4
    assert base.seconds_to_threshold == pytest.approx(0.575)       # (0.4 + 0.75) / 2, the eval rows' own times
    assert base.diverged == 0 and base.collapsed == 0
    assert base.step_time == pytest.approx(0.1) and base.step_time_ratio == pytest.approx(1.0)

    assert r1.final_mean == pytest.approx(1.0) and r1.final_std is None  # one seed has a metric
    assert r1.reached == 0 and r1.steps_to_threshold is None and r1.seconds_to_threshold is None
    assert r1.diverged == 1 and r1.collapsed == 1
    assert r1.step_time == pytest.approx(0.25)                     # (0.2 + 0.3) / 2
    assert r1.step_time_ratio == pytest.approx(2.5)


def test_time_to_threshold_both_directions():
    run = Run("v", 0, None, eval_rows=[eval_row(10, 1.0, fid=100.0), eval_row(20, 2.0, fid=45.0),
                                       eval_row(30, 3.0, fid=40.0)])
    assert time_to_threshold(run, "Metric/fid", 50, higher=False) == (20, 2.0)
    assert time_to_threshold(run, "Metric/fid", 45, higher=False) == (20, 2.0)  # "at least as good" includes equal
    assert time_to_threshold(run, "Metric/fid", 10, higher=False) is None
    assert time_to_threshold(run, "Metric/fid", 100, higher=True) == (10, 1.0)
    # An eval row without elapsed_s takes the time of the step row at that step.
    run = Run("v", 0, None, step_rows=[step_row(10, 7.5)], eval_rows=[{"step": 10, "Metric/fid": 1.0}])
    assert time_to_threshold(run, "Metric/fid", 2, higher=False) == (10, 7.5)


def test_divergence_definitions():
    fid = lambda *values: [eval_row(i, float(i), fid=v) for i, v in enumerate(values, 1)]  # noqa: E731
    ok = Run("v", 0, None, step_rows=[step_row(1, 0.1)], eval_rows=fid(100.0, 40.0, 70.0))
    assert divergence_reason(ok, "Metric/fid", higher=False) is None
    blown = Run("v", 0, None, eval_rows=fid(100.0, 40.0, 90.0))   # 90 > 2 x 40
    assert "> 2 x best 40" in divergence_reason(blown, "Metric/fid", higher=False)
    nan_run = Run("v", 0, None, eval_rows=fid(40.0, NAN))
    assert divergence_reason(nan_run, "Metric/fid", False) == "final Metric/fid = nan"
    # The blow-up rule is for lower-is-better metrics; losing modes is collapse, not divergence.
    modes = Run("v", 0, None, eval_rows=[eval_row(1, 1.0, modes=8), eval_row(2, 2.0, modes=2)])
    assert divergence_reason(modes, "Metric/modes", higher=True) is None
    # ... and for FID only: KID near 0 doubles by noise alone.
    kid = Run("v", 0, None, eval_rows=[eval_row(1, 1.0, kid=0.01), eval_row(2, 2.0, kid=0.03)])
    assert divergence_reason(kid, "Metric/kid", higher=False) is None
    loss = Run("v", 0, None, step_rows=[step_row(1, 0.1), step_row(2, 0.2, loss_g=float("inf"))])
    assert divergence_reason(loss) == "Loss/G = inf at step 2"
    marked = Run("v", 0, None, marker={"status": "diverged", "step": 9})
    assert divergence_reason(marked) == "stopped on a non-finite value at step 9"


def test_a_metric_stored_as_null_is_the_run_s_final_value_not_skipped(tmp_path):
    from steadygan.lab.report.aggregate import best_value
    from steadygan.training.tracking import Tracker

    tracker = Tracker(tmp_path, 0, 2, progress=False, tensorboard=False)  # as training writes them
    tracker.log_values(1, {"Metric/fid": 40.0, "Metric/recall": 0.3})
    tracker.log_values(2, {"Metric/fid": NAN, "Metric/recall": 0.2})  # stored as null
    tracker.close()
    steps, evals, _ = read_stats(tmp_path / "stats.jsonl")
    run = Run("v", 0, tmp_path, step_rows=steps, eval_rows=evals)
    assert math.isnan(final_value(run, "Metric/fid")) and final_value(run, "Metric/recall") == 0.2
    assert best_value(run, "Metric/fid", higher=False) == 40.0
    assert divergence_reason(run, "Metric/fid", False) == "final Metric/fid = nan"


def test_collapse_definitions():
    assert collapse_reason(Run("v", 0, None, eval_rows=[eval_row(1, 1.0, modes=1)])) == "final Metric/modes = 1"
    assert collapse_reason(Run("v", 0, None, eval_rows=[eval_row(1, 1.0, modes=0), eval_row(2, 2, modes=2)])) is None
    assert collapse_reason(Run("v", 0, None, eval_rows=[eval_row(1, 1.0, recall=0.03)])) == "final Metric/recall = 0.03"
    assert collapse_reason(Run("v", 0, None, eval_rows=[eval_row(1, 1.0, recall=0.2, fid=300)])) is None
    assert collapse_reason(Run("v", 0, None, step_rows=[step_row(1, 0.1)])) is None  # nothing measured
    # Labelled images: class coverage decides. A fabricated one-class run (KL = ln 10 to ten
    # equal classes) is collapsed; a varied run with the low recall of early training is not.
    one_class = Run("v", 0, None, eval_rows=[eval_row(1, 1.0, recall=0.5, class_kl=math.log(10), classes=1)])
    assert collapse_reason(one_class) == "final Metric/class_kl = 2.3 > ln 2"
    varied = Run("v", 0, None, eval_rows=[eval_row(1, 1.0, recall=0.01, class_kl=0.05, classes=10)])
    assert collapse_reason(varied) is None
    half = Run("v", 0, None, eval_rows=[eval_row(1, 1.0, class_kl=math.log(2) + 1e-9)])  # five of ten, evenly
    assert collapse_reason(half) is not None


def test_collapse_rule_2_sees_classes_drawn_without_their_variety():
    # A conditional run that draws one image per class: every class covered (KL 0), diversity gone.
    one_image_per_class = Run("v", 0, None, eval_rows=[eval_row(1, 1.0, class_kl=0.0, classes=10,
                                                                class_diversity=0.02, class_diversity_min=0.0)])
    assert collapse_reason(one_image_per_class) == "final Metric/class_diversity_min = 0 < 0.25"
    # Real-like variety (every class within its data's spread): not collapsed; the edge is not either.
    varied = Run("v", 0, None, eval_rows=[eval_row(1, 1.0, class_kl=0.01, class_diversity=0.93,
                                                   class_diversity_min=0.81)])
    assert collapse_reason(varied) is None
    edge = Run("v", 0, None, eval_rows=[eval_row(1, 1.0, class_kl=0.01, class_diversity_min=0.25)])
    assert collapse_reason(edge) is None
    # Class coverage is read first: a run missing classes is named for that.
    both = Run("v", 0, None, eval_rows=[eval_row(1, 1.0, class_kl=2.0, class_diversity_min=0.0)])
    assert collapse_reason(both) == "final Metric/class_kl = 2 > ln 2"
    # Without classes (unconditional), recall decides as before; diversity alone is not read there.
    assert collapse_reason(Run("v", 0, None, eval_rows=[eval_row(1, 1.0, recall=0.5)])) is None


def test_collapse_rule_3_fails_a_translation_no_closer_to_its_targets_than_its_inputs():
    def translation(l1, identity, **extra):
        row = {"step": 1, "elapsed_s": 1.0, "Metric/l1": l1, "Metric/l1_identity": identity, **extra}
        return Run("v", 0, None, eval_rows=[row])

    assert collapse_reason(translation(0.70, 0.65)) == "final Metric/l1 = 0.7, no better than the identity map's 0.65"
    assert collapse_reason(translation(0.65, 0.65)) is not None  # equal: it did not beat copying the input
    assert collapse_reason(translation(0.20, 0.65, **{"Metric/class_kl": 0.1})) is None
    # Closer to the targets but every output of one class: the class-coverage clause still applies.
    assert collapse_reason(translation(0.20, 0.65, **{"Metric/class_kl": 2.0})) == "final Metric/class_kl = 2 > ln 2"


def test_collapse_rule_5_fails_an_unpaired_translation_that_moves_hardly_more_inputs_to_the_target_class():
    def cycle(a_to_b, b_to_a, identity=(0.02, 0.01)):
        row = {"step": 1, "elapsed_s": 1.0, "Metric/target_share_AtoB": a_to_b, "Metric/target_share_BtoA": b_to_a,
               "Metric/identity_target_share_AtoB": identity[0], "Metric/identity_target_share_BtoA": identity[1],
               "Metric/fid_AtoB": 30.0}
        return Run("v", 0, None, eval_rows=[row])

    assert COLLAPSE_SHARE_MARGIN == 0.05
    assert collapse_reason(cycle(0.9, 0.8)) is None
    assert collapse_reason(cycle(0.02, 0.8)) == ("final Metric/target_share_AtoB = 0.02, less than 0.05 above the "
                                                  "identity map's 0.02")
    assert collapse_reason(cycle(0.9, 0.005)) == ("final Metric/target_share_BtoA = 0.005, less than 0.05 above the "
                                                  "identity map's 0.01")  # one direction failing fails the run
    # The lab's GP-GAN-penalty CycleGAN runs: boots "translated" to sneakers as often as copied
    # boots are called sneakers (0.031 against 0.029, two images in 1,000 more): failed.
    assert collapse_reason(cycle(0.6, 0.031, identity=(0.018, 0.029))) is not None
    # Just over the margin passes; just under it fails (the margin, not a strict comparison).
    assert collapse_reason(cycle(0.9, 0.0601)) is None
    assert collapse_reason(cycle(0.9, 0.0599)) is not None
    # Domains the classifier cannot tell apart (the identity's share within the margin of 1):
    # no share could clear the margin, so the clause does not judge.
    assert collapse_reason(cycle(0.97, 0.9, identity=(0.96, 0.01))) is None
    assert COLLAPSE_RULE_VERSION == 5


def test_step_time_is_the_median_of_consecutive_steps():
    rows = [step_row(s, e) for s, e in ((1, 0.0), (2, 0.1), (3, 1.1), (4, 1.3), (10, 9.0), (11, 9.2))]
    # Deltas 0.1, 1.0, 0.2, (gap 4 -> 10 skipped), 0.2: median 0.2.
    assert step_time(Run("v", 0, None, step_rows=rows)) == pytest.approx(0.2)
    assert step_time(Run("v", 0, None, step_rows=rows[:1])) is None
    # Rows missing in between (e.g. a resume cut the log) would move the median if counted.
    gappy = [step_row(s, e) for s, e in ((1, 0.0), (2, 0.1), (10, 8.0), (20, 20.0), (21, 20.1))]
    assert step_time(Run("v", 0, None, step_rows=gappy)) == pytest.approx(0.1)


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0, None, NAN]) == (2.0, 1.0, 3)
    assert mean_std([4.0]) == (4.0, None, 1)
    assert mean_std([]) == (None, None, 0)


def test_read_stats_splits_deduplicates_and_skips_broken_lines(tmp_path):
    path = tmp_path / "stats.jsonl"
    rows = [step_row(1, 0.1), step_row(2, 0.2, loss_d=5.0), step_row(2, 0.25, loss_d=6.0), eval_row(2, 0.3, fid=9.0),
            {"step": 2, "Health/diversity": 0.5}, {"step": 2, "Health/status": 1}, {"step": 1, "Health/status": 0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 3, "Loss')
    steps, evals, health = read_stats(path)
    assert [(r["step"], r["Loss/D"]) for r in steps] == [(1, 1.0), (2, 6.0)]  # the resumed row wins
    assert evals == [eval_row(2, 0.3, fid=9.0)]
    assert health == [{"step": 1, "Health/status": 0}, {"step": 2, "Health/diversity": 0.5, "Health/status": 1}]


def test_first_warning_is_the_step_and_signal_where_the_health_status_first_left_healthy():
    from steadygan.lab.report.health import first_warning

    steps = [step_row(i, 0.1 * i) for i in range(1, 1001)]
    probes = [{"step": 100 * k, "Health/diversity": v} for k, v in enumerate((1.0, 0.8, 0.3, 0.3, 0.1, 0.1), 1)]
    assert first_warning(Run("v", 0, None, step_rows=steps, probe_rows=probes)) == "400 (Health/diversity)"
    assert first_warning(Run("v", 0, None, step_rows=steps, probe_rows=probes[:3])) == "none"  # one low probe
    fid = [eval_row(300, 1.0, fid=20.0), eval_row(600, 2.0, fid=45.0)]  # > 2x the best: failing at once
    assert first_warning(Run("v", 0, None, step_rows=steps, eval_rows=fid)) == "600 (Metric/fid)"
    # A healed run: the rows it went back over are gone; its Rollback rows say when it failed.
    healed = probes[:2] + [{"step": 200, "Rollback/count": 1, "Rollback/failed_at": 400},
                           {"step": 300, "Rollback/count": 2, "Rollback/diverged_at": 350}]
    assert first_warning(Run("v", 0, None, step_rows=steps, probe_rows=healed)) == "350 (rolled back); 2 remedies"


def test_a_healed_runs_remedies_are_counted_from_its_config_history(tmp_path):
    """Two rollbacks to one step leave two Rollback rows at that step; rows merged by step keep
    one. The config history has a line per remedy."""
    from steadygan.lab.report.health import first_warning
    from steadygan.training.recovery import Remedy, record_remedy

    steps = [step_row(i, 0.1 * i) for i in range(1, 101)]
    merged = [{"step": 0, "Rollback/count": 2, "Rollback/failed_at": 60}]  # the first of the two was merged away
    record_remedy(tmp_path, 1, 0, 40, "failing", Remedy(("d.lr=0.0001",)))
    record_remedy(tmp_path, 2, 0, 60, "failing", Remedy((), 0.5))
    assert first_warning(Run("v", 0, tmp_path, step_rows=steps, probe_rows=merged)) == "40 (rolled back); 2 remedies"


def test_parse_metric():
    assert parse_metric("fid") == ("Metric/fid", False)
    assert parse_metric("Metric/modes") == ("Metric/modes", True)
    assert parse_metric("Metric/sharpness:max") == ("Metric/sharpness", True)
    with pytest.raises(ConfigError, match="no known direction"):
        parse_metric("Metric/sharpness")
    with pytest.raises(ConfigError, match=":max or :min"):
        parse_metric("fid:up")


@pytest.mark.slow
def test_write_report_toy(toy_lab):
    md = write_report(toy_lab, threshold=6)
    report = md.parent
    for name in ("report.md", "report.html", "metric_vs_steps.png", "metric_vs_seconds.png", "losses.png",
                 "gradients.png", "samples.png"):
        assert (report / name).stat().st_size > 0, name
    text = md.read_text()
    assert "| baseline | 2 | 6 ± 1.4 | 7.5 ± 0.71 | 2/2 | 4 | 0.575 | 0/2 | 0/2 | 0.1 | 1 |" in text
    assert "| r1 | 2 | 1 | 1 | 0/2 | – | – | 1/2 | 1/2 | 0.25 | 2.5 |" in text
    page = (report / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "src=\"data:" in page
    assert 'src="' not in page.replace('src="data:', "")  # nothing outside the file
    # Default threshold for Metric/modes on ring8: all 8 modes (only baseline s1 got there).
    assert "| baseline | 2 | 6 ± 1.4 | 7.5 ± 0.71 | 1/2 | 4 | 0.75 |" in write_report(toy_lab).read_text()


@pytest.mark.slow
def test_write_report_without_metrics_or_plan(tmp_path):
    lab = tmp_path / "lab"
    write_run(lab, "baseline", 0, [step_row(i, 0.1 * i) for i in range(1, 6)], {"status": "finished", "step": 5})
    write_run(lab, "agc", 0, [step_row(i, 0.3 * i) for i in range(1, 4)])  # unfinished, no marker
    md = write_report(lab)  # no compare.yaml: runs found from directory names
    text = md.read_text()
    assert "No evaluation metric was recorded" in text and "1 not finished" in text
    assert "| agc | 1 | 0/1 | 0/1 | 0.3 | 3 |" in text  # ratio to the baseline variant
    assert "| baseline | 0 | finished | 5 | 0.5 | no | no | none | `baseline-s0` |" in text
    assert not (md.parent / "metric_vs_steps.png").exists() and (md.parent / "losses.png").exists()
    assert "No run recorded `Metric/fid`" in write_report(lab, main_metric="fid").read_text()


@pytest.mark.slow
def test_write_report_images_shows_newest_grids(tmp_path, monkeypatch):
    from PIL import Image

    lab = tmp_path / "lab"
    for seed in (0, 1):
        run = write_run(lab, "baseline", seed, [step_row(i, 0.1 * i) for i in range(1, 4)]
                        + [eval_row(3, 0.3, fid=50.0 + seed, recall=0.5)], data="idx")
        (run / "samples").mkdir()
        for step, value in ((2, 0), (3, 255)):
            Image.fromarray(np.full((20, 20), value, dtype=np.uint8)).save(run / "samples" / f"step-{step:08d}.png")
    write_plan(lab, [("baseline", 0), ("baseline", 1)])
    figures = {}
    real_save = plots._save

    def keep_and_save(fig, path):
        figures[path.name] = fig
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", keep_and_save)
    md = write_report(lab)
    assert "final Metric/fid" in md.read_text() and "50.5 ± 0.71" in md.read_text()
    assert (md.parent / "samples.png").exists()
    cells = figures["samples.png"].axes
    assert [ax.get_title() for ax in cells] == ["seed 0, step 3", "seed 1, step 3"]
    assert all(ax.images[0].get_array().min() == 255 for ax in cells)  # the newest grid, not step 2's
    assert cells[0].axison and cells[0].yaxis.label.get_visible() and cells[0].get_ylabel() == "baseline"


def _metric_figure(lab, tmp_path, monkeypatch, axis="steps"):
    """Draw the metric plot of a fabricated lab and hand back its axes (figure closed)."""
    figures = []

    def keep_and_save(fig, path):
        figures.append(fig)
        plots._pyplot().close(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep_and_save)
    plots.plot_metric(load_runs(lab), "Metric/fid", None, tmp_path / "m.png", axis=axis)
    return figures[0].axes[0]


def _mean_line(ax, label="baseline"):
    line = next(line for line in ax.get_lines() if line.get_label() == label)
    return line.get_xdata(), line.get_ydata()


def test_metric_vs_steps_interpolates_when_seeds_are_evaluated_at_different_steps(tmp_path, monkeypatch):
    # Evaluation by wall-clock: seed 0 scored at steps 2 and 4, seed 1 at 3 and 5.
    lab = tmp_path / "lab"
    write_run(lab, "baseline", 0, [eval_row(2, 0.2, fid=40.0), eval_row(4, 0.4, fid=20.0)], data="idx")
    write_run(lab, "baseline", 1, [eval_row(3, 0.2, fid=50.0), eval_row(5, 0.4, fid=10.0)], data="idx")
    ax = _metric_figure(lab, tmp_path, monkeypatch)
    x, y = _mean_line(ax)
    # Only over the span both seeds cover, steps 3..4: seed 0 is at 30 -> 20, seed 1 at 50 -> 30.
    assert x[0] == 3 and x[-1] == 4
    assert y[0] == pytest.approx(40.0) and y[-1] == pytest.approx(25.0)
    assert "faint: each seed" in ax.get_title()


def test_metric_vs_steps_keeps_going_when_a_seed_stops_early(tmp_path, monkeypatch):
    # Evaluation every 2 steps; seed 1 diverged after step 4 and drops out of the mean.
    lab = tmp_path / "lab"
    write_run(lab, "baseline", 0, [eval_row(s, s / 10, fid=f) for s, f in ((2, 40.0), (4, 30.0), (6, 20.0))],
              data="idx")
    write_run(lab, "baseline", 1, [eval_row(s, s / 10, fid=f) for s, f in ((2, 60.0), (4, 50.0))], data="idx")
    x, y = _mean_line(_metric_figure(lab, tmp_path, monkeypatch))
    assert list(x) == [2, 4, 6] and list(y) == [50.0, 40.0, 20.0]


def test_metric_vs_seconds_ignores_non_finite_and_unsorted_points(tmp_path, monkeypatch):
    # Seed 0 has a NaN evaluation and its rows out of time order (a resume); seed 1 is clean.
    lab = tmp_path / "lab"
    write_run(lab, "baseline", 0, [eval_row(1, 0.0, fid=40.0), eval_row(2, 2.0, fid=20.0),
                                   eval_row(3, 1.0, fid=NAN)], data="idx")
    write_run(lab, "baseline", 1, [eval_row(1, 0.0, fid=60.0), eval_row(2, 2.0, fid=40.0)], data="idx")
    x, y = _mean_line(_metric_figure(lab, tmp_path, monkeypatch, axis="seconds"))
    assert x[0] == 0 and x[-1] == 2 and np.isfinite(y).all()
    assert y[len(y) // 2] == pytest.approx((30.0 + 50.0) / 2, rel=1e-2)  # both seeds halfway at 1 s


@pytest.mark.slow
def test_report_tabulates_class_metrics_of_conditional_runs(tmp_path):
    lab = tmp_path / "lab"
    for seed, (agree, intra) in enumerate(((0.8, 10.0), (0.6, 14.0))):
        write_run(lab, "baseline", seed, [step_row(i, 0.1 * i) for i in range(1, 4)]
                  + [eval_row(3, 0.3, fid=20.0, class_agreement=agree, intra_fid=intra)], data="idx")
    text = write_report(lab).read_text()
    assert "## Class-conditional metrics" in text
    assert "| baseline | 0.7 ± 0.14 | 12 ± 2.8 |" in text
    plain = tmp_path / "plain"
    write_run(plain, "baseline", 0, [step_row(i, 0.1 * i) for i in range(1, 4)] + [eval_row(3, 0.3, fid=20.0)],
              data="idx")
    assert "Class-conditional" not in write_report(plain).read_text()


@pytest.mark.slow
def test_report_tabulates_each_translation_metric_beside_the_identity_map(tmp_path):
    paired = tmp_path / "paired"
    for seed, (l1, psnr) in enumerate(((0.06, 19.0), (0.08, 17.0))):
        write_run(paired, "baseline", seed, [step_row(i, 0.1 * i) for i in range(1, 4)]
                  + [eval_row(2, 0.2, fid=30.0, l1=0.5, psnr=5.0, ssim=0.1, l1_identity=0.66),
                     eval_row(3, 0.3, fid=20.0, l1=l1, psnr=psnr, ssim=0.8, l1_identity=0.66)], data="edges2fashion")
    text = write_report(paired).read_text()
    assert "| baseline | 0.07 ± 0.014 | 18 ± 1.4 | 0.8 ± 0 |" in text  # the final scores, not step 2's
    assert "against its own target" in text and "`Metric/l1_identity` 0.66." in text
    assert "Per direction" not in text
    write_run(paired, "r1", 0, [eval_row(2, 0.2, l1=0.07, psnr=None, ssim=0.7)], data="edges2fashion")
    write_run(paired, "r1", 1, [step_row(1, 0.1)], data="edges2fashion")  # not scored yet
    text = write_report(paired).read_text()
    assert "| r1 | 0.07 (1 of 2 runs) | – (0 of 2 runs) | 0.7 (1 of 2 runs) |" in text
    unpaired = tmp_path / "unpaired"
    scores = {"target_share_AtoB": 0.8, "fid_AtoB": 19.0, "cycle_l1_AtoB": 0.03, "silhouette_iou_AtoB": 0.6,
              "target_share_BtoA": 0.4, "fid_BtoA": 27.0, "cycle_l1_BtoA": 0.04, "silhouette_iou_BtoA": 0.75,
              "identity_target_share_AtoB": 0.02, "identity_target_share_BtoA": 0.03}
    write_run(unpaired, "baseline", 0, [step_row(1, 0.1), eval_row(1, 0.1, fid=23.0, **scores)], data="sneakers2boots")
    text = write_report(unpaired).read_text()
    assert "| baseline | 0.8 | 19 | 0.03 | 0.6 | 0.4 | 27 | 0.04 | 0.75 |" in text
    assert ("`Metric/identity_target_share_AtoB` 0.02, `Metric/identity_target_share_BtoA` 0.03." in text
            and "against its own target" not in text)
    plain = tmp_path / "plain"
    write_run(plain, "baseline", 0, [step_row(1, 0.1), eval_row(1, 0.1, fid=20.0)], data="idx")
    assert "Translation metrics" not in write_report(plain).read_text()


@pytest.mark.parametrize("toy", [True, False])
def test_the_samples_figure_keeps_its_whole_title_with_one_run(tmp_path, monkeypatch, toy):
    lab = tmp_path / "lab"
    write_run(lab, "baseline", 0, [eval_row(2, 0.2, modes=8)], data="ring8" if toy else "idx")
    figures = {}
    real_save = plots._save

    def keep_and_save(fig, path):
        figures[path.name] = fig
        fig.canvas.draw()
        title = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
        figures["title"] = (title, fig.bbox)
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", keep_and_save)
    plots.plot_samples(load_runs(lab), tmp_path / "samples.png")
    title, page = figures["title"]
    assert page.x0 <= title.x0 and title.x1 <= page.x1 and title.y1 <= page.y1  # nothing of it off the page
    text = figures["samples.png"].get_suptitle().replace("\n", " ")
    assert text == ("generated samples (2,500 points, noise seed 0) over the true modes" if toy
                    else "newest sample grid of each run")
