"""tune's last rung: which cells go on, and how they are ranked (a failure on any seed first)."""

from __future__ import annotations

import datetime

import optuna
import pytest

from steadygan.lab.report.aggregate import Run
from steadygan.lab.tune.finals import finalists, standings, winner_warning
from steadygan.lab.tune.space import Cell, parse_space

SPACE = parse_space({"methods": {"baseline": {}, "r1": {"gamma": [1, 10]}, "clip-value": {"eps": [0.01]}}}, "s")


def _run(fid, status="finished", stopped="steps"):
    rows = [{"step": 100, "Metric/fid": fid, "Metric/class_kl": 0.01}] if fid is not None else []
    return Run("v", 0, None, eval_rows=rows, marker={"status": status, "stopped": stopped, "step": 100})


def test_a_cell_that_failed_on_any_seed_ranks_after_every_one_that_did_not():
    a, b, c = (Cell("baseline"), Cell("r1:gamma=10"), Cell("clip-value:eps=0.01"))
    runs = {a: [_run(20.0), _run(22.0)],                                  # mean 21, no failure
            b: [_run(10.0), _run(11.0, stopped="failing")],               # best mean, one failing seed
            c: [_run(25.0), _run(15.0)]}                                  # mean 20, no failure
    table = standings([a, b, c], runs.__getitem__, "Metric/fid", higher=False)
    assert [s.cell for s in table] == [c, a, b]
    assert (table[0].mean, table[2].failed, table[2].reasons) == (20.0, 1, ["its health status failed"])
    assert table[0].std == pytest.approx(7.0711, abs=1e-4)
    assert winner_warning(table) is None
    only_failing = standings([b], runs.__getitem__, "Metric/fid", higher=False)
    assert winner_warning(only_failing) == ("every finalist failed on some seed; the winner, r1:gamma=10, failed on "
                                            "1 of 2 (its health status failed): read the report before training "
                                            "with it")
    diverged = standings([a, c], {a: [_run(None, status="diverged")], c: [_run(30.0)]}.__getitem__, "Metric/fid",
                         higher=False)
    assert [s.cell for s in diverged] == [c, a] and diverged[1].mean is None


def _finish(study, label, value, minute):
    trial = optuna.trial.create_trial(
        params={"cell": label}, distributions={"cell": optuna.distributions.CategoricalDistribution(
            [c.label for c in SPACE.cells()])}, value=value,
        state=optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.PRUNED,
        user_attrs={"rung": "search", "cell": label, "stopped": "steps" if value is not None else "pruned"})
    trial.datetime_complete = datetime.datetime(2026, 12, 7, 5, minute)
    study.add_trial(trial)


def test_finalists_are_the_best_of_the_first_cells_tried_in_the_order_they_ended():
    study = optuna.create_study()
    _finish(study, "r1:gamma=1", 30.0, 1)
    _finish(study, "baseline", None, 2)          # pruned: never a finalist
    _finish(study, "r1:gamma=10", 12.0, 3)
    _finish(study, "r1:gamma=1", 30.0, 4)        # drawn again: counts once
    _finish(study, "clip-value:eps=0.01", 5.0, 5)  # the fourth cell: past --trials 3
    chosen = finalists(study, SPACE, trials=3, count=2, higher=False)
    assert [c.label for c in chosen] == ["r1:gamma=10", "r1:gamma=1"]
    assert [c.label for c in finalists(study, SPACE, trials=4, count=1, higher=False)] == ["clip-value:eps=0.01"]
    assert [c.label for c in finalists(study, SPACE, trials=4, count=1, higher=True)] == ["r1:gamma=1"]
