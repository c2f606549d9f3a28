"""Scoring a health rule on a corpus: labels, the report's step, flags, shares and intervals."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest
import yaml

from steadygan.lab.health_eval import (
    GRID,
    OFF,
    PARAMS,
    fit_rule,
    flag_step,
    load_corpus,
    report_step,
    rule_flag_step,
    score,
    signal_rules,
    wilson,
)
from steadygan.training.health import HealthRule


def _write(lab, name, seed, probes, evals, marker=None):
    run = lab / "runs" / f"{name}-s{seed}"
    run.mkdir(parents=True)
    rows = [{"step": s, "Loss/D": 1.0, "Loss/G": 1.0, "Logits/real_sign": 0.2, "Logits/fake_sign": -0.2}
            for s in range(1, 1001)]
    rows += [{"step": 50 * (i + 1), "Health/diversity": v} for i, v in enumerate(probes)]
    rows += [{"step": s, "Metric/fid": fid, "Metric/class_kl": kl} for s, fid, kl in evals]
    (run / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"name": "fashion-mnist"}}))
    (run / "done.json").write_text(json.dumps(marker or {"status": "finished", "step": 1000}))


HEALTHY_EVALS = [(s, 30.0, 0.01) for s in range(50, 1001, 50)]  # as the corpus: every 50 steps
# Collapses from step 300: class KL past ln 2 at 600 (the report flags it at its evaluation of 750
# when it evaluates every 250 steps, at 600 every 100).
COLLAPSE_EVALS = [(s, 30.0, 0.01 if s < 600 else 1.5) for s in range(50, 1001, 50)]
COLLAPSE_PROBES = [1.0] * 5 + [0.1] * 15  # probes every 50 steps: low from step 300


@pytest.fixture
def corpus(tmp_path):
    _write(tmp_path / "setting-a", "baseline", 0, COLLAPSE_PROBES, COLLAPSE_EVALS)
    _write(tmp_path / "setting-a", "baseline", 1, [1.0] * 20, HEALTHY_EVALS)
    _write(tmp_path / "setting-b", "baseline", 0, [1.0] * 4 + [0.3] + [1.0] * 15, HEALTHY_EVALS)  # one dip at 250
    _write(tmp_path / "setting-b", "baseline", 1, [1.0] * 20, HEALTHY_EVALS[:8], {"status": "diverged", "step": 420})
    _write(tmp_path / "setting-b", "baseline", 2, [1.0] * 20, HEALTHY_EVALS[:6])  # unfinished: no done.json
    (tmp_path / "setting-b" / "runs" / "baseline-s2" / "done.json").unlink()
    return tmp_path


def test_runs_are_labelled_by_the_report_and_flagged_where_it_would_first_flag_them(corpus):
    runs = {(r.kind, r.run.seed): r for r in load_corpus(corpus, every=250)}
    assert set(runs) == {("setting-a", 0), ("setting-a", 1), ("setting-b", 0), ("setting-b", 1)}
    assert [runs[k].failed for k in sorted(runs)] == [True, False, False, True]
    assert runs["setting-a", 0].report_step == 750 and report_step(runs["setting-a", 0].run, 100) == 600
    assert runs["setting-b", 1].report_step == 420  # stopped on a non-finite value there


def test_a_rule_is_scored_on_the_share_it_flags_how_early_and_its_false_alarms(corpus):
    runs = load_corpus(corpus, every=250)
    s = score(runs, HealthRule(), every=250)
    # The collapse: two low probes (300, 350) -> flagged at 350, the report at 750. The diverged
    # run shows nothing the rule reads before it stops. The healthy runs' single dip: no flag.
    assert (s.flagged_failed, s.failed, s.flagged_healthy, s.healthy) == (1, 2, 0, 2)
    assert s.ratios == [350 / 750] and s.median_ratio == pytest.approx(0.4667, abs=1e-4)
    strict = score(runs, HealthRule(low_diversity=0.5, collapse_probes=1), every=250)
    assert (strict.flagged_healthy, strict.ratios) == (1, [300 / 750])  # the dip at 250 is flagged now
    alone = {name: score(runs, rule, 250).flagged_failed for name, rule in signal_rules().items()}
    # The support candidates read Metric/modes and Metric/recall, which this corpus (labelled) does not use.
    assert alone == {"combined": 1, "variety probe": 1, "class probe": 0, "D wins": 0,  # no Health/class_kl here
                     "evaluation": 1, "combined + support": 1, "support alone": 0}  # evaluation: class KL at 750


def test_the_fitted_rule_flags_the_most_within_the_false_alarm_budget(corpus):
    runs = load_corpus(corpus, every=250)
    rule = fit_rule(runs, every=250)
    s = score(runs, rule, every=250)
    # One low probe is enough here (no healthy run dips below the grid's 0.25): flagged at 300.
    assert s.flagged_healthy == 0 and s.flagged_failed == 1 and s.ratios == [300 / 750]
    assert rule.collapse_probes == 1
    # What this corpus cannot tell apart stays at the default (it has no class probe rows).
    assert (rule.class_kl_probes, rule.d_wins) == (HealthRule().class_kl_probes, HealthRule().d_wins)
    healthy_only_dips = [r for r in runs if not r.failed] + [r for r in runs if r.failed]
    assert fit_rule(healthy_only_dips, every=250, max_false_alarms=-1) is None  # no rule within the budget
    with pytest.raises(ValueError, match="healthy runs"):
        fit_rule([r for r in runs if r.failed], every=250)


def test_a_rule_flags_where_the_first_of_its_signals_alone_would(corpus):
    # The fit replays each signal alone and takes the earliest: the same as the whole rule
    # replayed, for every rule of the grid (and a class probe that flags the collapse at 500).
    run_dir = corpus / "setting-a" / "runs" / "baseline-s0"
    rows = run_dir.joinpath("stats.jsonl").read_text() + "".join(
        json.dumps({"step": s, "Health/class_kl": 1.0 if s >= 450 else 0.1}) + "\n" for s in range(50, 1001, 50))
    run_dir.joinpath("stats.jsonl").write_text(rows)
    # A run whose D wins from step 400 (in the step rows) and whose class variety is low in the
    # probe from 700 and in the evaluation at 500 (two row kinds feeding one signal).
    _write(corpus / "setting-c", "baseline", 0, [1.0] * 20, HEALTHY_EVALS)
    winning = corpus / "setting-c" / "runs" / "baseline-s0" / "stats.jsonl"
    rows = [json.loads(line) for line in winning.read_text().splitlines()]
    for row in rows:
        if "Logits/real_sign" in row and row["step"] >= 400:
            row["Logits/real_sign"], row["Logits/fake_sign"] = 1.0, -1.0
        if "Health/diversity" in row and row["step"] >= 700:
            row["Health/class_diversity_min"] = 0.1
        if "Metric/fid" in row and row["step"] == 500:
            row["Metric/class_diversity_min"] = 0.1
    winning.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cache: dict = {}
    rules = [HealthRule(**dict(zip(GRID, values))) for values in itertools.product(*GRID.values())]
    runs = load_corpus(corpus, every=250)
    for every in (250, 100):  # the same runs and cache: a cached flag is one of this cadence's
        for rule in rules[::7] + [HealthRule(low_diversity=-1.0, class_kl_probes=2), HealthRule(d_wins=2.0),
                                  HealthRule(d_wins=2.0, class_diversity=-1.0),
                                  HealthRule(low_diversity=-1.0, probe_class_kl=math.inf, d_wins=2.0)]:
            for r in runs:
                assert flag_step(r.run, rule, every, cache) == rule_flag_step(r.run, rule, every), (rule, every)
    runs = load_corpus(corpus, every=250)
    assert flag_step(runs[0].run, HealthRule(low_diversity=-1.0, collapse_diversity=-1.0), 250) == 500
    # Read at every other probe, as the monitor does: high at 500 and 600, not 550.
    thinned = load_corpus(corpus, every=250, class_every=100)
    assert flag_step(thinned[0].run, HealthRule(low_diversity=-1.0, collapse_diversity=-1.0), 250) == 600
    # Every setting of the rule belongs to one signal (a new one would otherwise be left at its default).
    owned = {"warm_up", *itertools.chain(*PARAMS.values()), *itertools.chain(*OFF.values())}
    assert {f.name for f in dataclasses.fields(HealthRule)} == owned


def test_wilson_intervals_match_their_closed_form():
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(27, 30)
    assert (lo, hi) == pytest.approx((0.7438, 0.9654), abs=1e-4)  # by hand: centre 0.8546, half 0.1108
    assert all(math.isnan(x) for x in wilson(0, 0))
