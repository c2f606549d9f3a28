"""Healing (train.on_failure=heal) and rollback: the ladder, the state gone back to, the remedy
applied and recorded, a spent ladder, and a healed run resumed after a kill."""

from __future__ import annotations

import functools
import json

import pytest

from steadygan.errors import ConfigError
from steadygan.training import health
from steadygan.training.build import new_run_dir, recovery_ladder
from steadygan.training.checkpoint import list_checkpoints, load_checkpoint
from steadygan.training.recovery import DEFAULT_LADDER, HISTORY, Remedy, parse_rung, read_history
from steadygan.training.resume import resume_config
from steadygan.training.trainer import Trainer, train

# --- the ladder ---------------------------------------------------------------------------------


def test_a_rung_is_overrides_and_a_learning_rate_factor():
    assert parse_rung(["d.penalties=[r1:gamma=10]", "lr_scale=0.5", "lr_scale=0.5"], "x") == Remedy(
        ("d.penalties=[r1:gamma=10]",), 0.25)
    assert str(Remedy(("loss=hinge",), 0.5)) == "loss=hinge, learning rates x0.5"


@pytest.mark.parametrize("rung, message", [
    (["d.lr"], "x: 'd.lr' is not key=value"),
    (["model.width=8"], "x: healing cannot change model.width"),
    (["train.seed=3"], "x: healing cannot change train.seed"),
    (["d.optimizer=sgd"], "x: healing cannot change d.optimizer"),
    (["lr_scale=2"], "x: lr_scale must be in (0, 1] (got 2)"),
    (["lr_scale=half"], "x: lr_scale must be a number (got 'half')"),
    ([], "x: an empty remedy"),
])
def test_a_rung_healing_cannot_apply_is_a_one_line_error(rung, message):
    with pytest.raises(ConfigError) as info:
        parse_rung(rung, "x")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_the_default_ladder_leaves_out_what_does_not_apply_and_a_user_rung_that_fails_is_an_error(tmp_path, toy_cfg,
                                                                                                 image_cfg, idx_dir):
    points = recovery_ladder(toy_cfg(tmp_path, "train.on_failure=heal"))
    assert [r.overrides for r in points] == [DEFAULT_LADDER[0], DEFAULT_LADDER[1][:2]]  # no DiffAugment on points
    assert points[1].lr_factor == 0.5
    assert len(recovery_ladder(image_cfg(tmp_path, idx_dir, "train.on_failure=heal"))) == 3
    with pytest.raises(ConfigError, match=r"train.heal_ladder\[1\] \(d.penalties=\[nope\]\): unknown penalty 'nope'"):
        toy_cfg(tmp_path, "train.on_failure=heal", 'train.heal_ladder=[["d.lr=1e-4"], ["d.penalties=[nope]"]]')
    # Rungs accumulate: the second is checked on the config the first made (momentum is not Adam's).
    with pytest.raises(ConfigError, match=r"heal_ladder\[1\] \(d.momentum=0.9\)"):
        toy_cfg(tmp_path, "train.on_failure=heal", 'train.heal_ladder=[["d.lr=1e-4"], ["d.momentum=0.9"]]')
    with pytest.raises(ConfigError, match="train.heal_ladder is empty"):
        toy_cfg(tmp_path, "train.on_failure=heal", "train.heal_ladder=[]")
    # A remedy the run already has would replay the failure: left out, and said.
    notes: list[str] = []
    has_r1 = toy_cfg(tmp_path, "train.on_failure=heal", "d.penalties=[r1:gamma=10]")
    assert [r.overrides for r in recovery_ladder(has_r1, notes)] == [DEFAULT_LADDER[1][:2]]
    assert notes == ["the default heal ladder's remedy 1 (loss=non-saturating, d.penalties=[r1:gamma=10]) left out: "
                     "the run already has it",
                     "the default heal ladder's remedy 3 (train.augment=diffaugment) left out: train.augment "
                     "transforms images; this run's data are 2-D points"]
    legacy = recovery_ladder(toy_cfg(tmp_path, "train.on_nan=rollback", "train.max_rollbacks=2",
                                     "train.rollback_lr_factor=0.25"))
    assert legacy == [Remedy((), 0.25)] * 2
    assert recovery_ladder(toy_cfg(tmp_path)) == []


# --- healing a run --------------------------------------------------------------------------------

# Every probe reads as a collapse: the status fails at the first probe past the warm-up (6 steps
# after the start or the newest rollback), so no state after the start is clean enough to keep.
ALWAYS_FAILING = functools.partial(health.HealthRule, collapse_diversity=10.0, low_diversity=10.0,
                                   collapse_probes=1, warm_up=6)
LADDER = '[["d.penalties=[r1:gamma=10]"], ["g.lr=0.0001", "lr_scale=0.5"], ["loss=hinge"]]'

# A run that collapses twice: before its first remedy from step 10, after it from step 16, never
# after the second. Probes every 2 steps, two low ones in a row fail it (at 12, at 18); states are
# kept every 4 steps once 4 steps past a (re)start and while no probe is low.
TWICE = functools.partial(health.HealthRule, collapse_probes=2, warm_up=4)
COLLAPSES_FROM = {0: 10, 1: 16}


@pytest.fixture
def collapses_twice(monkeypatch):
    monkeypatch.setattr(health, "HealthRule", TWICE)
    init = Trainer.__init__

    def remember(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.health.trainer = self

    def measure(self, G, D, step):
        start = COLLAPSES_FROM.get(self.trainer.rollbacks, 10**9)
        return {"Health/diversity": 0.05 if self.trainer.step >= start else 1.0}

    monkeypatch.setattr(Trainer, "__init__", remember)
    monkeypatch.setattr(health.HealthMonitor, "measure", measure)


def _heal_cfg(toy_cfg, tmp_path, *sets):
    return toy_cfg(tmp_path, "train.steps=20", "train.health_every=2", "train.on_failure=heal", "train.heal_every=4",
                   "train.checkpoint_every=3", "train.log_every=1", f"train.heal_ladder={LADDER}", *sets)


def test_a_failing_run_goes_back_to_its_newest_clean_state_with_the_next_remedy(tmp_path, toy_cfg, collapses_twice):
    cfg = _heal_cfg(toy_cfg, tmp_path)
    result = train(cfg)
    run = result.run_dir
    assert (result.stopped, result.step, result.remedies) == ("steps", 20, 2)
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    rollbacks = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows if "Rollback/count" in r]
    # Back to 8, not 12 (failing there); then to 12, not 16 (a low probe there already).
    assert rollbacks == [{"step": 8, "Rollback/count": 1, "Rollback/lr_scale": 1.0, "Rollback/failed_at": 12},
                         {"step": 12, "Rollback/count": 2, "Rollback/lr_scale": 0.5, "Rollback/failed_at": 18}]
    assert [r["step"] for r in rows if "Loss/D" in r] == list(range(1, 21))  # the abandoned steps are gone
    statuses = [(r["step"], r["Health/status"]) for r in rows if "Health/status" in r]
    assert statuses == [(8, 0), (12, 0)]  # healthy again at each rollback (the failing rows were cut)
    history = read_history(run)
    assert [(h["remedy"], h["step"], h["failed_at"], h["overrides"], h["lr_factor"]) for h in history] == [
        (1, 8, 12, ["d.penalties=[r1:gamma=10]"], 1.0), (2, 12, 18, ["g.lr=0.0001"], 0.5)]
    assert "mode collapse" in history[0]["why"]
    # Exactly the remedies, in order, on top of the config it started with; the third never needed.
    state = load_checkpoint(result.checkpoint)
    healed = state["config"]
    assert healed["d"]["penalties"] == [{"name": "r1", "gamma": 10}] and healed["g"]["lr"] == 1e-4
    assert healed["loss"] == cfg.loss and healed["d"]["lr"] == cfg.d.lr and healed["model"] == cfg.to_dict()["model"]
    assert "gamma: 10" in (run / "config.yaml").read_text()
    assert state["rollbacks"] == 2 and state["lr_scale"] == 0.5
    assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(cfg.d.lr * 0.5)
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.5)


def test_a_spent_ladder_stops_the_run_failing(tmp_path, toy_cfg, monkeypatch):
    monkeypatch.setattr(health, "HealthRule", ALWAYS_FAILING)
    result = train(_heal_cfg(toy_cfg, tmp_path))
    # Nothing after the start is clean: each remedy goes back to step 0 and fails again at 6.
    assert (result.stopped, result.step, result.remedies) == ("failing", 6, 3)
    assert [(h["step"], h["failed_at"]) for h in read_history(result.run_dir)] == [(0, 6)] * 3


def test_a_divergence_under_heal_goes_back_to_the_healthy_state_not_the_checkpoint(tmp_path, toy_cfg, nan_once_at):
    cfg = toy_cfg(tmp_path, "train.steps=12", "train.on_failure=heal", "train.heal_every=4",
                  "train.checkpoint_every=100", "train.log_every=1")
    trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
    nan_once_at(trainer, 6)
    result = trainer.train()
    assert result.step == 12 and result.remedies == 1
    rows = [json.loads(line) for line in (result.run_dir / "stats.jsonl").read_text().splitlines()]
    (rollback,) = [r for r in rows if "Rollback/count" in r]
    # The default warm-up (200 steps) keeps no state but the start's: back to step 0.
    assert (rollback["step"], rollback["Rollback/diverged_at"]) == (0, 6)
    assert trainer.cfg.d.penalties == [{"name": "r1", "gamma": 10}]  # the default ladder's first remedy
    # The rollback wrote the remedied state as a checkpoint: a kill right after resumes healed.
    assert [p.name for p in list_checkpoints(result.run_dir)] == ["ckpt-00000000.pt", "ckpt-00000012.pt"]


def test_a_healed_run_killed_and_resumed_ends_where_an_uninterrupted_one_does(tmp_path, toy_cfg, collapses_twice,
                                                                               final_state, assert_same_state):
    straight = train(_heal_cfg(toy_cfg, tmp_path / "a"))

    cfg = _heal_cfg(toy_cfg, tmp_path / "b")
    trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
    original = trainer._one_step

    def killed_before_step_17():
        if trainer.step == 16:  # after the checkpoint of step 15, which carries the clean state of step 12
            raise RuntimeError("killed")
        return original()

    trainer._one_step = killed_before_step_17
    with pytest.raises(RuntimeError, match="killed"):
        trainer.train()
    run = trainer.run_dir
    assert len(read_history(run)) == 1
    resumed_cfg, payload = resume_config(run, None, [], allow_change=False)
    assert payload["step"] == 15 and payload["heal_snapshot"]["step"] == 12 and payload["heal_snapshot"]["state"]
    assert resumed_cfg.d.penalties == [{"name": "r1", "gamma": 10}]  # the remedy it had taken
    resumed = train(resumed_cfg, run_dir=run, resume=payload)  # fails at 18, back to the kept state of 12
    assert (resumed.stopped, resumed.step, resumed.remedies) == (straight.stopped, straight.step, straight.remedies)
    assert_same_state(final_state(straight.run_dir), final_state(run))
    assert [(h["remedy"], h["step"]) for h in read_history(run)] == [(1, 8), (2, 12)]
    assert (run / HISTORY).read_text().count("\n") == 2


@pytest.mark.slow
def test_a_spent_ladder_ends_the_command_with_its_message(tmp_path, capsys, monkeypatch):
    from steadygan.cli import main

    monkeypatch.setattr(health, "HealthRule", ALWAYS_FAILING)
    code = main(["train", "-c", "configs/ring8.yaml", "--set", "data.toy_samples=1000", "--set", "model.width=16",
                 "--set", "model.depth=2", "--steps", "30", "--set", "train.health_every=2", "--on-failure", "heal",
                 "--set", 'train.heal_ladder=[["d.lr=0.00005"]]', "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3
    assert "rolled back to its newest healthy state (step 0) with d.lr=0.00005 (remedy 1 of 1)" in err
    assert "after 1 remedy (the heal ladder is spent); stopped with its checkpoint" in err


def test_going_back_twice_to_one_state_restores_what_the_first_remedy_added(tmp_path, toy_cfg, monkeypatch):
    """Rung 1 replaces R1 with LeCam (a penalty with moving averages: R1's saved state is not
    its own); the second failure, before any new healthy state, goes back to the same step:
    LeCam's averages must be those of that step (zero, as built), not what the failed attempt
    left them at."""
    monkeypatch.setattr(health, "HealthRule", ALWAYS_FAILING)
    cfg = toy_cfg(tmp_path, "train.steps=12", "train.health_every=2", "train.on_failure=heal", "train.heal_every=100",
                  "d.penalties=[r1:gamma=1]",
                  'train.heal_ladder=[["d.penalties=[lecam]"], ["lr_scale=0.5"]]')
    trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
    seen, recover = [], trainer._recover

    def recording(*args):
        done = recover(*args)
        seen.append((trainer.step, [p.state_dict() for p in trainer.d.penalties]))
        return done

    trainer._recover = recording
    assert trainer.train().remedies == 2
    assert seen[:2] == [(0, [{"ema_real": 0.0, "ema_fake": 0.0}]), (0, [{"ema_real": 0.0, "ema_fake": 0.0}])]


def test_a_kill_right_after_a_rollback_resumes_from_the_remedied_state(tmp_path, toy_cfg, collapses_twice):
    cfg = _heal_cfg(toy_cfg, tmp_path, "train.checkpoint_every=5")
    trainer = Trainer(cfg, new_run_dir(cfg.train.out_dir))
    original = trainer._one_step

    def killed_after_the_first_rollback():
        if trainer.rollbacks == 1:
            raise RuntimeError("killed")
        return original()

    trainer._one_step = killed_after_the_first_rollback
    with pytest.raises(RuntimeError, match="killed"):
        trainer.train()
    # ckpt-10 held the abandoned attempt (it failed at 12): gone; the remedied state of step 8 is the newest.
    assert [p.name for p in list_checkpoints(trainer.run_dir)] == ["ckpt-00000005.pt", "ckpt-00000008.pt"]
    assert load_checkpoint(list_checkpoints(trainer.run_dir)[-1])["rollbacks"] == 1


def test_the_ladder_a_run_started_with_is_kept_by_a_resume_unless_it_was_changed(tmp_path, toy_cfg):
    from steadygan.training.recovery import Recovery

    started = Recovery(toy_cfg(tmp_path, "train.on_failure=heal", f"train.heal_ladder={LADDER}").train,
                       [Remedy(("d.penalties=[r1:gamma=10]",)), Remedy(("g.lr=0.0001",), 0.5)])
    saved = started.state_dict(applied=1)  # saved after the first remedy
    healed_cfg = toy_cfg(tmp_path, "train.on_failure=heal", f"train.heal_ladder={LADDER}", "d.penalties=[r1:gamma=10]")
    resumed = Recovery(healed_cfg.train, recovery_ladder(healed_cfg))  # rung 1 left out: the config has it
    assert len(resumed.ladder) == 2 and resumed.ladder[0] != started.ladder[0]
    resumed.load_state_dict(saved)
    assert resumed.ladder == started.ladder and resumed.restored
    changed = Recovery(toy_cfg(tmp_path, "train.on_failure=heal", 'train.heal_ladder=[["loss=hinge"]]').train,
                       [Remedy(("loss=hinge",))])
    changed.load_state_dict(saved)  # another ladder on resume: the rung applied, then theirs
    assert changed.ladder == [started.ladder[0], Remedy(("loss=hinge",))] and not changed.restored
    # A rollback to a state saved before that resume loads the same saved ladder again: the same result.
    changed.load_state_dict(saved)
    assert changed.ladder == [started.ladder[0], Remedy(("loss=hinge",))]
    # A run that only warned, resumed to heal: the ladder its recovery settings make now.
    warned = Recovery(toy_cfg(tmp_path, "train.on_failure=warn").train, []).state_dict(applied=0)
    heal_cfg = toy_cfg(tmp_path, "train.on_failure=heal")
    healing = Recovery(heal_cfg.train, recovery_ladder(heal_cfg))
    healing.load_state_dict(warned)
    assert healing.ladder == recovery_ladder(heal_cfg) and len(healing.ladder) > 0


def test_a_kill_in_the_middle_of_a_rollback_resumes_to_what_an_uninterrupted_run_does(tmp_path, toy_cfg,
                                                                                        collapses_twice, final_state,
                                                                                        assert_same_state, monkeypatch):
    """Killed after the Rollback row was written but before the remedied state was saved: the
    resume goes back to the checkpoint of step 8 (the newer one, of the abandoned attempt, was
    deleted first), drops the Rollback row of the rollback it never finished, fails at 12 again
    and heals exactly as the run that was never killed."""
    import steadygan.training.trainer as trainer_module

    sets = ("train.checkpoint_every=4",)  # a checkpoint at the clean state of step 8
    straight = train(_heal_cfg(toy_cfg, tmp_path / "a", *sets))
    cfg = _heal_cfg(toy_cfg, tmp_path / "b", *sets)
    real_record = trainer_module.record_remedy

    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(trainer_module, "record_remedy", killed)
    with pytest.raises(RuntimeError, match="killed"):
        train(cfg)
    monkeypatch.setattr(trainer_module, "record_remedy", real_record)
    (run,) = (tmp_path / "b").glob("runs/*")
    assert [p.name for p in list_checkpoints(run)][-1] == "ckpt-00000008.pt"  # ckpt-12 (the failed attempt) gone
    resumed = train(*resume_config(run, None, [], allow_change=False)[:1], run_dir=run,
                    resume=resume_config(run, None, [], allow_change=False)[1])
    assert (resumed.stopped, resumed.step, resumed.remedies) == (straight.stopped, straight.step, straight.remedies)
    assert_same_state(final_state(straight.run_dir), final_state(run))

    def rows(r):
        return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
                for line in (r / "stats.jsonl").read_text().splitlines()]

    assert [r for r in rows(run) if "Rollback/count" in r] == [r for r in rows(straight.run_dir)
                                                                if "Rollback/count" in r]
    assert [(h["remedy"], h["step"], h["failed_at"]) for h in read_history(run)] == [
        (h["remedy"], h["step"], h["failed_at"]) for h in read_history(straight.run_dir)]


def test_a_rollback_keeps_the_best_model_the_run_made_even_from_the_attempt_it_abandoned(tmp_path, toy_cfg,
                                                                                           collapses_twice,
                                                                                           monkeypatch):
    import steadygan.training.periodic_eval as periodic_eval

    scored = []

    def score(row, points):  # the evaluation at step 10 of the first attempt (failing at 12) is the best
        scored.append(row)
        return (100.0,) if len(scored) == 5 else (len(scored) / 100,)

    monkeypatch.setattr(periodic_eval, "main_score", score)
    result = train(_heal_cfg(toy_cfg, tmp_path, "train.eval_every=2"))
    assert result.remedies == 2
    best = json.loads((result.run_dir / "checkpoints" / "best.json").read_text())
    assert best["step"] == 10 and best["score"] == [100.0]
    assert (result.run_dir / "checkpoints" / "best.pt").exists()
    assert load_checkpoint(result.checkpoint)["eval"]["best"]["step"] == 10
