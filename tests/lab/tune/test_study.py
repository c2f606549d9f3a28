"""tune's search: the storage and its password, pruning on fabricated curves, trials as runs
(a failing one stopped by its health status, an interrupted one resumed), two workers on one
study, and best.yaml."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml

from steadygan.errors import ConfigError, Interrupted
from steadygan.lab.report import aggregate
from steadygan.lab.tune import Tune, TuneRequest
from steadygan.lab.tune.study import (
    PASSWORD_ENV,
    Objective,
    SearchSettings,
    display_url,
    mask,
    open_study,
    storage_url,
)
from steadygan.training import health

ROOT = Path(__file__).resolve().parents[3]
RING8 = str(ROOT / "configs" / "ring8.yaml")
SMALL = ("data.toy_samples=2000", "model.width=32", "model.depth=2", "data.batch_size=64", "train.log_every=5",
         "train.health_every=10")


def _space(tmp_path, methods):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"methods": methods}))
    return str(path)


# --- storage --------------------------------------------------------------------------------------


def test_the_password_comes_from_the_environment_and_is_never_shown(tmp_path, monkeypatch):
    assert storage_url(tmp_path, None) == f"sqlite:///{(tmp_path / 'study.db').resolve()}"
    with pytest.raises(ConfigError) as info:
        storage_url(tmp_path, "postgresql://tuner:hunter2@db/studies")
    assert "hunter2" not in str(info.value) and str(info.value).startswith("--storage: the URL holds a password;")
    for url in ("postgresql:/tuner:hunter2@db/x", "postgresql://tuner@db:port/x", "postgresql://u@db/x?password=hunter2",
                "postgresql://tuner:hun@ter2@db/x"):  # malformed, or a password in the query or with a raw @
        with pytest.raises(ConfigError) as info:
            storage_url(tmp_path, url)
        assert "hunter2" not in str(info.value) and "ter2" not in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError):  # refused before the tune folder is written
        Tune(_request(_space(tmp_path, {"baseline": {}}), storage="postgresql://u@db/x?password=hunter2"),
             tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert display_url("postgresql://u@db/x?sslmode=require&password=hunter2") == (
        "postgresql://u@db/x?sslmode=require&password=***")
    monkeypatch.setenv(PASSWORD_ENV, "s3cr:t/@")
    url = storage_url(tmp_path, "postgresql://tuner@127.0.0.1:1/studies")
    # The plain scheme gets the driver the postgres extra installs (psycopg 3).
    assert url == "postgresql+psycopg://tuner:s3cr%3At%2F%40@127.0.0.1:1/studies" and mask(url) == (
        "postgresql+psycopg://tuner:***@127.0.0.1:1/studies")
    settings = SearchSettings("Metric/fid", False, 4, "tpe", "sha")
    with pytest.raises(ConfigError) as info:  # nothing listens on port 1
        open_study(url, "x", settings)
    message = str(info.value)
    assert message.startswith("cannot open the study at postgresql+psycopg://tuner:***@127.0.0.1:1/studies")
    assert "s3cr" not in message and "%3A" not in message and "\n" not in message


@pytest.mark.parametrize("message", ["table alembic_version already exists", "database is locked"])
def test_a_worker_that_loses_the_race_to_create_the_tables_loads_them(tmp_path, monkeypatch, message):
    # Two workers starting at once: SQLite tells the loser "table alembic_version already exists"
    # (seen in CI) or, while the winner's transaction holds the file, "database is locked". It
    # must wait and load the winner's tables, not fail the worker.
    import optuna
    from sqlalchemy.exc import OperationalError

    calls = []

    class Racing(optuna.storages.RDBStorage):  # a subclass: Optuna checks storages by type
        def __init__(self, url, **kwargs):
            calls.append(url)
            super().__init__(url, **kwargs)
            if len(calls) == 1:  # the other worker created the schema first
                raise OperationalError("CREATE TABLE alembic_version", {}, Exception(message))

    monkeypatch.setattr(optuna.storages, "RDBStorage", Racing)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    study = open_study(storage_url(tmp_path, None), "race", SearchSettings("Metric/fid", False, 4, "random", "none"))
    assert len(calls) == 2 and study.study_name == "race"
    # Any other database error is still one line, not a retry.
    calls.clear()

    class Broken(optuna.storages.RDBStorage):
        def __init__(self, url, **kwargs):
            calls.append(url)
            raise OperationalError("SELECT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", Broken)
    with pytest.raises(ConfigError, match="disk I/O error"):
        open_study(storage_url(tmp_path, None), "race", SearchSettings("Metric/fid", False, 4, "random", "none"))
    assert len(calls) == 1


def test_two_tunes_in_one_database_get_their_own_study_and_a_resumed_one_its_old(tmp_path):
    request = _request(_space(tmp_path, {"baseline": {}}))
    name = Tune(request, tmp_path / "a" / "out").study_name()
    assert name.startswith("out-") and name == Tune(request, tmp_path / "b" / "out").study_name()
    other = TuneRequest(**{**request.__dict__, "steps": 61})
    assert Tune(other, tmp_path / "a" / "out").study_name() != name


# --- the space against the config ---------------------------------------------------------------------


def test_cells_that_do_not_apply_to_the_config_leave_the_space_with_their_reason(tmp_path):
    space = _space(tmp_path, {"baseline": {}, "r1": {"gamma": [0.1, 10]}, "clip-value": {"eps": [0.01]}})
    compiled = (*SMALL, "train.compile=default")  # R1's double backward cannot be compiled
    tune = Tune(_request(space, base_overrides=compiled), tmp_path / "out")
    assert [c.label for c in tune.space.cells()] == ["baseline", "clip-value:eps=0.01"]
    assert len(tune.dropped) == 2 and all("train.compile=default: r1" in d for d in tune.dropped)
    assert tune.trials == 2  # the grid: every cell left
    with pytest.raises(ConfigError, match="no cell of the space applies to this config; the first: cell r1:gamma"):
        Tune(_request(_space(tmp_path, {"r1": {"gamma": [1]}}), base_overrides=compiled), tmp_path / "out")


def test_beta1_values_no_cell_can_use_leave_the_space_and_the_methods_stay(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"methods": {"baseline": {}, "r1": {"gamma": [1]}}, "beta1": [0.0, 0.5]}))
    sgd = (*SMALL, "d.optimizer=sgd", "g.optimizer=sgd", "d.betas=null", "g.betas=null")
    tune = Tune(_request(str(path), base_overrides=sgd), tmp_path / "out")
    assert [c.label for c in tune.space.cells()] == ["baseline", "r1:gamma=1"]  # the config's own optimiser
    assert [d.split(":")[0] for d in tune.dropped] == ["beta1=0", "beta1=0.5"]


def test_best_yaml_keeps_the_budget_the_winner_won_at_and_each_players_beta2(tmp_path):
    space = _space(tmp_path, {"r1": {"gamma": [10]}})
    request = _request(space, steps=None, time=30.0, base_overrides=(*SMALL, "d.betas=[0.5,0.9]"))
    tune = Tune(request, tmp_path / "out")
    (tmp_path / "out").mkdir()
    cell = tune.space.cells()[0]
    chosen = yaml.safe_load(tune.write_best(dataclasses.replace(cell, beta1=0.0)).read_text())
    assert chosen["train"]["time"] == 30.0
    assert (chosen["d"]["betas"], chosen["g"]["betas"]) == ([0.0, 0.9], [0.0, 0.999])


# --- pruning ---------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask and tell, not optimize: no heartbeat needed
@pytest.mark.parametrize("higher", [False, True])
def test_successive_halving_prunes_a_curve_behind_the_others_at_its_first_rung(tmp_path, higher):
    study = open_study(storage_url(tmp_path, None), "p", SearchSettings("Metric/x", higher, 10, "random", "sha"))
    sign = -1 if higher else 1
    objective = Objective(None, SearchSettings("Metric/x", higher, 10, "random", "sha"), None)
    for _ in range(3):  # three finished trials, observed as tune observes them: the metric 10 throughout
        trial = study.ask()
        observe = objective._observer(trial, lambda step, v, t=trial: t.report(v, step))
        assert [observe(step, {"Metric/x": sign * 10.0}) for step in range(20, 101, 20)] == [None] * 5
        study.tell(trial, sign * 10.0)
    worse, better = study.ask(), study.ask()
    for trial, value, expected in ((worse, 50.0, "pruned"), (better, 5.0, None)):
        seen: list = []
        observe = objective._observer(trial, lambda step, v, t=trial, s=seen: (s.append(step), t.report(v, step)))
        assert observe(20, {"Metric/x": sign * value}) == expected
        assert seen == [20]
    assert objective._observer(better, lambda *a: None)(40, {"Metric/y": 1.0}) is None  # no main metric: go on


@pytest.mark.parametrize(("trials", "startup"), [(6, 2), (4, 2), (21, 7), (60, 10)])
def test_tpe_models_the_results_after_a_third_of_the_search(tmp_path, trials, startup):
    # Optuna's default of 10 random trials first would make a short search (a third of a 19-cell
    # grid: 6 trials) pure random search.
    study = open_study(storage_url(tmp_path, None), "t", SearchSettings("Metric/x", False, trials, "tpe", "none"))
    assert study.sampler._n_startup_trials == startup  # Optuna's own attribute: what the sampler will do


# --- trials are runs ---------------------------------------------------------------------------------


def _request(space, **kw):
    args = dict(base_config=RING8, base_overrides=SMALL, space=space, steps=60, time=None, trials=3, finalists=1,
                seeds=2, sampler="grid", pruner="none")
    args.update(kw)
    return TuneRequest(**args)


@pytest.mark.slow
def test_a_tune_ends_with_the_winner_as_a_config_that_trains_and_a_report(tmp_path, capsys, lenient_rule):
    space = _space(tmp_path, {"baseline": {}, "r1": {"gamma": [0.1, 10]}})
    best, report = Tune(_request(space), tmp_path / "out").run()
    runs = sorted(p.name for p in (tmp_path / "out" / "runs").iterdir())
    assert [n for n in runs if n.endswith("-s0")] == ["baseline-s0", "r1-gamma-0.1-s0", "r1-gamma-10-s0"]
    assert len(runs) == 4  # and the winner's seed 1
    winner = next(n[:-3] for n in runs if n.endswith("-s1"))
    trained = yaml.safe_load((tmp_path / "out" / "runs" / f"{winner}-s0" / "config.yaml").read_text())
    chosen = yaml.safe_load(best.read_text())
    for key in ("data", "model", "loss", "d", "g"):
        assert chosen[key] == trained[key], key
    assert chosen["train"]["steps"] == 60 and chosen["train"]["on_failure"] == "warn"  # the user's, not the trial's
    text = report.read_text()
    assert "## Tune" in text and f"Winner: **{winner.replace('-gamma-', ':gamma=')}**" in text
    assert text.count("| steps | 60 |") == 3  # the three search trials ran to the budget
    from steadygan.cli import main

    assert main(["train", "-c", str(best), "--steps", "2", "--out", str(tmp_path / "again"), "--no-progress"]) == 0


@pytest.mark.slow
def test_a_failing_trial_is_stopped_by_its_health_status(tmp_path, monkeypatch):
    monkeypatch.setattr(health, "HealthRule", functools.partial(
        health.HealthRule, collapse_diversity=10.0, low_diversity=10.0, collapse_probes=1, warm_up=20))
    space = _space(tmp_path, {"baseline": {}})
    tune = Tune(_request(space, trials=1), tmp_path / "out")
    with pytest.raises(ConfigError, match="no search trial reached its budget"):
        tune.run()
    marker = json.loads((tmp_path / "out" / "runs" / "baseline-s0" / "done.json").read_text())
    assert (marker["stopped"], marker["step"]) == ("failing", 20)
    study = optuna.load_study(study_name=tune.study_name(), storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs["stopped"] == "failing"


@pytest.mark.slow
def test_a_trial_that_fails_the_reports_rule_at_its_last_evaluation_is_pruned_not_ranked(tmp_path, monkeypatch):
    # Health never stops it; the report's rule, made strict enough that any ring8 run fails it
    # (all 8 modes <= 1000), fails it at its budget: its value must not reach the sampler or finals.
    monkeypatch.setattr(aggregate, "COLLAPSE_MODES", 1000)
    space = _space(tmp_path, {"baseline": {}})
    tune = Tune(_request(space, trials=1), tmp_path / "out")
    with pytest.raises(ConfigError, match="no search trial reached its budget"):
        tune.run()
    marker = json.loads((tmp_path / "out" / "runs" / "baseline-s0" / "done.json").read_text())
    assert (marker["stopped"], marker["step"]) == ("steps", 60)  # it ran to its budget
    study = optuna.load_study(study_name=tune.study_name(), storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs["stopped"] == "failed"
    assert trial.user_attrs["failure"].startswith("final Metric/modes = ")


@pytest.mark.slow
def test_an_interrupted_tune_resumes_without_losing_or_repeating_a_trial(tmp_path, monkeypatch, lenient_rule):
    space = _space(tmp_path, {"baseline": {}, "r1": {"gamma": [10]}})
    original = Objective._observer
    calls = []

    def interrupt_the_second_trial(self, trial, report):
        observe = original(self, trial, report)

        def wrapped(step, row):
            calls.append(trial.number)
            return "interrupted" if trial.number == 1 and step == 24 else observe(step, row)

        return wrapped

    monkeypatch.setattr(Objective, "_observer", interrupt_the_second_trial)
    request = _request(space, trials=2, finalists=1, seeds=1, steps=60, base_overrides=(*SMALL, "train.eval_every=12"))
    with pytest.raises(Interrupted):
        Tune(request, tmp_path / "out").run()
    monkeypatch.setattr(Objective, "_observer", original)
    Tune(request, tmp_path / "out").run()
    study = optuna.load_study(study_name=Tune(request, tmp_path / "out").study_name(),
                              storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    (first, interrupted, again) = study.trials
    assert [t.state.name for t in (first, interrupted, again)] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert interrupted.params == again.params and {first.params["cell"], again.params["cell"]} == {
        "baseline", "r1:gamma=10"}
    # The interrupted run was resumed from its checkpoint: every step once.
    slug = {"baseline": "baseline", "r1:gamma=10": "r1-gamma-10"}[again.params["cell"]]
    rows = [json.loads(line) for line in (tmp_path / "out" / "runs" / f"{slug}-s0" / "stats.jsonl").read_text()
            .splitlines()]
    assert [r["step"] for r in rows if "Loss/D" in r] == list(range(1, 61))


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path, lenient_steadygan):
    space = _space(tmp_path, {"baseline": {}, "r1": {"gamma": [0.1, 10]}, "clip-value": {"eps": [0.01]}})
    args = [*lenient_steadygan, "tune", "-c", RING8, "--space", space, "--steps", "40",
            "--sampler", "grid", "--pruner", "none", "--finalists", "1", "--seeds", "1", "-o", str(tmp_path / "out"),
            "--set", *SMALL]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    results = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], results
    storage = f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    (name,) = optuna.get_all_study_names(storage)  # one study, both workers in it
    study = optuna.load_study(study_name=name, storage=storage)
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert {t.user_attrs["cell"] for t in done} == {"baseline", "clip-value:eps=0.01", "r1:gamma=0.1", "r1:gamma=10"}
    # A cell both workers drew at once is trained by one (the other's trial waits for the run and
    # reuses it): every run holds each step once.
    for run in (tmp_path / "out" / "runs").iterdir():
        rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows if "Loss/D" in r] == list(range(1, 41)), run.name
    both = results[0][0] + results[1][0]  # stdout
    assert both.count("best config:") == 2
