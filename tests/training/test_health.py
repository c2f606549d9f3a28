"""The health monitor: its signals by hand, its status on fabricated runs, and a run it watches."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from steadygan.data import InMemoryData
from steadygan.training.health import (
    FAILING,
    HEALTHY,
    WARNING,
    HealthJudge,
    HealthRule,
    Probe,
    d_features,
    judge_rows,
    memorisation,
    step_signals,
)
from steadygan.training.tracking import read_stats
from steadygan.training.trainer import train

# --- signals ------------------------------------------------------------------------------------


def test_step_signals_are_d_s_accuracy_on_each_side_and_the_logit_gap():
    row = {"Logits/real_sign": 0.5, "Logits/fake_sign": -0.8, "Logits/real": 2.0, "Logits/fake": -1.5}
    assert step_signals(row) == {"Health/d_real_acc": 0.75, "Health/d_fake_acc": 0.9, "Health/logit_gap": 3.5}
    assert step_signals({"Loss/D": 1.0}) == {}


class Points(nn.Module):
    """A generator that puts sample i at z_i (collapsed: at the origin), and a D that embeds x."""

    def __init__(self, collapsed: bool = False) -> None:
        super().__init__()
        self.collapsed = collapsed
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, z, y=None):
        return torch.zeros_like(z[:, :2]) if self.collapsed else z[:, :2] * self.w


class Critic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def embed(self, x):
        return 3 * x

    def forward(self, x, y=None):
        return self.lin(x).squeeze(1)


def _points(n=200, seed=0) -> InMemoryData:
    return InMemoryData(torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)), None, "ring8", "mixture")


def test_the_probe_measures_variety_without_moving_the_rng_or_the_modes():
    probe = Probe(_points(), z_dim=2, num_classes=0, device=torch.device("cpu"), n=32)
    G, D = Points().train(), Critic().train()
    state = torch.get_rng_state()
    varied = probe.measure(G, D)
    assert torch.equal(torch.get_rng_state(), state) and G.training and D.training
    # G puts the probe's standard-normal noise where the data's standard-normal points are: about as varied.
    assert 0.7 < varied["Health/diversity"] < 1.3
    assert varied["Health/diversity_d"] == pytest.approx(varied["Health/diversity"])  # embed = 3x: same ratio
    collapsed = probe.measure(Points(collapsed=True), D)
    assert collapsed["Health/diversity"] == 0.0 and collapsed["Health/diversity_d"] == 0.0
    again = Probe(_points(), z_dim=2, num_classes=0, device=torch.device("cpu"), n=32).measure(G, D)
    assert again == varied  # fixed noise and a fixed real batch: the same numbers


def test_memorisation_is_the_share_of_train_held_out_pairs_d_ranks_the_right_way():
    # pairs (3,2) (3,0) (2,2) tie (2,0) (1,2) wrong (1,0): (1 + 1 + 0.5 + 1 + 0 + 1) / 6
    assert memorisation(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([2.0, 0.0])) == pytest.approx(4.5 / 6)
    assert memorisation(torch.full((5,), 7.0), torch.full((3,), 7.0)) == 0.5


class Remembers(nn.Module):
    """A D that scores 1 for the images it was shown and 0 for any other."""

    def __init__(self, shown: torch.Tensor) -> None:
        super().__init__()
        self.shown = shown

    def forward(self, x, y=None):
        return (x[:, None] == self.shown[None]).flatten(2).all(2).any(1).float()


def test_the_probe_sees_a_d_that_has_memorised_its_training_images():
    train_points, heldout = _points(100, seed=0), _points(100, seed=1)
    probe = Probe(train_points, z_dim=2, num_classes=0, device=torch.device("cpu"), n=32, heldout=heldout)
    assert probe.measure(Points(), Remembers(train_points.samples))["Health/memorisation"] == 1.0
    assert probe.measure(Points(), Remembers(torch.zeros(1, 2)))["Health/memorisation"] == 0.5
    assert "Health/memorisation" not in Probe(train_points, 2, 0, torch.device("cpu"), n=32).measure(
        Points(), Critic())  # no held-out data, no signal


@pytest.mark.slow
def test_a_run_probes_memorisation_on_its_test_split_and_a_toy_run_does_not(tmp_path, idx_dir, image_cfg, toy_cfg):
    from steadygan.training.build import _heldout_data, build_data

    cfg = image_cfg(tmp_path, idx_dir, "train.health_every=3", "model.d_norm=none")
    heldout = _heldout_data(cfg, build_data(cfg))
    assert heldout is not None and len(heldout) == 48  # the fixture's t10k files
    rows = read_stats(train(cfg).run_dir / "stats.jsonl")
    probed = [r for r in rows if "Health/diversity" in r]
    assert len(probed) == 2 and all(0.0 <= r["Health/memorisation"] <= 1.0 for r in probed)  # steps 3 and 6
    toy = toy_cfg(tmp_path)
    assert _heldout_data(toy, build_data(toy)) is None


class ClassCentres(nn.Module):
    """A conditional generator at class k's centre (4k, 0); ``ignore_z``: exactly there, whatever z."""

    def __init__(self, ignore_z: bool) -> None:
        super().__init__()
        self.ignore_z = ignore_z

    def forward(self, z, y):
        centre = torch.stack([4.0 * y.float(), torch.zeros_like(y, dtype=torch.float)], 1)
        return centre if self.ignore_z else centre + z[:, :2]


def test_the_probe_fails_a_conditional_generator_that_draws_the_class_and_ignores_z():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(400) % 4
    data = InMemoryData(ClassCentres(ignore_z=False)(torch.randn(400, 2, generator=g), y), y, "points", "mixture")
    probe = Probe(data, z_dim=2, num_classes=4, device=torch.device("cpu"), n=64)
    ignoring = probe.measure(ClassCentres(ignore_z=True), Critic())
    # Across classes the samples still vary (the centres are apart); within each they do not at all.
    assert ignoring["Health/diversity"] > 0.5 and ignoring["Health/class_diversity_min"] == 0.0
    honest = probe.measure(ClassCentres(ignore_z=False), Critic())
    assert honest["Health/class_diversity_min"] > 0.4
    judge = HealthJudge()
    assert judge.observe({"step": 500, **honest}).level == HEALTHY
    status = judge.observe({"step": 550, **ignoring})
    assert (status.level, status.signal) == (FAILING, "class_diversity") and "z is ignored" in status.reason


def test_the_probe_classifies_a_fixed_batch_of_its_own_for_an_unconditional_generator():
    seen = []

    def class_kl(images):
        seen.append(images)
        return float(images[:, 0].mean())  # any function of the images: the probe logs what it returns

    plain = Probe(_points(), z_dim=2, num_classes=0, device=torch.device("cpu"), n=32)
    probe = Probe(_points(), z_dim=2, num_classes=0, device=torch.device("cpu"), n=32, class_kl=class_kl)
    assert torch.equal(probe.z, plain.z) and torch.equal(probe.real, plain.real)  # the other batches unchanged
    out = probe.measure(Points(), Critic())
    (images,) = seen
    # 256 draws of the probe's own stream after its other draws: not the variety batch, the same every time
    g = torch.Generator().manual_seed(12_345)
    torch.randn(32, 2, generator=g), torch.randperm(200, generator=g)
    assert torch.equal(images, Points()(torch.randn(256, 2, generator=g)))
    assert out["Health/class_kl"] == float(images[:, 0].mean())
    assert {k: v for k, v in out.items() if k != "Health/class_kl"} == plain.measure(Points(), Critic())
    no_classes = Probe(_points(), 2, 0, torch.device("cpu"), n=32, class_kl=lambda images: None)
    assert "Health/class_kl" not in no_classes.measure(Points(), Critic())
    assert no_classes.class_kl is None  # asked once: no further forward for a signal that cannot be measured
    # A generator with BatchNorm in training mode: the class batch leaves its statistics, its mode
    # and the training RNG as they were, and is generated in chunks of the probe's size.
    G, D = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).train(), Critic()
    before, rng, sizes = {k: v.clone() for k, v in G.state_dict().items()}, torch.get_rng_state(), []
    G.register_forward_hook(lambda module, args, output: sizes.append(len(args[0])))
    probe.measure(G, D)
    assert G.training and torch.equal(torch.get_rng_state(), rng) and sizes == [32] * 9  # 32 variety + 8 x 32
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())
    y = torch.arange(200) % 4  # a conditional generator draws the classes it is asked for: not its signal
    labelled = InMemoryData(_points().samples, y, "points", "mixture")
    conditional = Probe(labelled, 2, 4, torch.device("cpu"), n=32, class_kl=class_kl)
    assert "Health/class_kl" not in conditional.measure(ClassCentres(ignore_z=False), Critic())


def test_the_monitor_reads_the_classes_at_every_other_probe_by_the_step():
    from steadygan.training.health import HealthMonitor

    probe = Probe(_points(), z_dim=2, num_classes=0, device=torch.device("cpu"), n=32, class_kl=lambda im: 0.5)
    monitor = HealthMonitor(probe, every=50)
    classified = [step for step in range(50, 401, 50) if "Health/class_kl" in monitor.measure(Points(), Critic(), step)]
    assert classified == [100, 200, 300, 400]  # the step decides: a run resumed at 250 classifies at 300 as well


def test_d_features_are_the_penultimate_layer_or_the_samples():
    x = torch.randn(3, 2)
    assert torch.equal(d_features(Critic(), x, None), 3 * x)
    projection = nn.Module()
    projection.base = Critic()
    assert torch.equal(d_features(projection, x, None), 3 * x)
    assert torch.equal(d_features(nn.Linear(2, 1), x.view(3, 2), None), x)


# --- the status on fabricated runs ------------------------------------------------------------------


def _steps(first, last, real_sign=0.2, fake_sign=-0.2):
    return [{"step": s, "Logits/real_sign": real_sign, "Logits/fake_sign": fake_sign, "Logits/real": 0.5,
             "Logits/fake": -0.5, "Loss/D": 1.2, "Loss/G": 0.9} for s in range(first, last)]


def _probe(step, diversity):
    return {"step": step, "Health/diversity": diversity, "Health/diversity_d": diversity}


def test_a_healthy_run_stays_healthy_even_when_noisy():
    rows = _steps(1, 1001)
    noisy = [0.9, 0.5, 1.1, 0.4, 0.8, 0.36, 1.0]  # dips, never twice in a row under 0.35
    rows += [_probe(50 * (i + 1), noisy[i % len(noisy)]) for i in range(20)]
    rows += [{"step": 500, "Metric/fid": 40.0}, {"step": 1000, "Metric/fid": 55.0}]  # within 1.5x of the best
    judge = judge_rows(rows)
    assert judge.status.level == HEALTHY and judge.history == []


def test_a_slow_collapse_warns_then_fails_naming_the_variety():
    rows = _steps(1, 1001)
    variety = [1.0, 0.9, 0.7, 0.5, 0.33, 0.3, 0.2, 0.12, 0.1, 0.08]
    rows += [_probe(100 * (i + 1), v) for i, v in enumerate(variety)]
    judge = judge_rows(rows)
    first, worst = judge.history[0], judge.history[-1]
    assert (first.level, first.signal, first.step) == (WARNING, "Health/diversity", 600)  # 0.33, 0.3: two in a row
    assert (worst.level, worst.step) == (FAILING, 800)  # 0.12 < 0.15: the fourth low probe (500, 600, 700, 800)
    assert worst.reason == "the generator's samples are 0.12 as varied as the data's for 4 probes: mode collapse"


def test_a_sudden_divergence_of_the_evaluation_fails_at_once():
    rows = _steps(1, 751) + [{"step": 250, "Metric/fid": 30.0}, {"step": 500, "Metric/fid": 25.0},
                             {"step": 750, "Metric/fid": 60.0}]
    judge = judge_rows(rows)
    assert judge.status.level == FAILING and judge.status.signal == "Metric/fid" and judge.status.step == 750
    assert judge.status.reason == "FID 60 is more than 2x the run's best 25"


def test_concentrated_classes_in_the_probe_fail_after_two_probes_in_a_row():
    def classes(step, kl):
        return {"step": step, "Health/class_kl": kl}

    # One high probe (an early jump) is forgiven; two in a row fail, naming the signal.
    rows = _steps(1, 501) + [classes(250, 1.5), classes(300, 0.2), classes(350, 0.9), classes(400, 1.2),
                             classes(450, 0.1)]
    judge = HealthJudge()
    levels = {}
    for row in sorted(rows, key=lambda r: r["step"]):
        judge.observe(row)
        if "Health/class_kl" in row:
            levels[row["step"]] = (judge.status.level, judge.clean(row["step"]))
    assert levels[250] == (HEALTHY, False)  # a high probe on its way to a finding: not a state to go back to
    assert levels[300] == (HEALTHY, True)
    assert levels[400][0] == FAILING and judge.history[0].signal == "Health/class_kl"
    assert judge.history[0].reason == "the classes drawn are as concentrated as half of them at 2 readings in a " \
                                      "row (class KL 1.2 > 0.693)"
    assert levels[450] == (HEALTHY, True)  # measured again, fine again
    assert judge_rows(rows, HealthRule(class_kl_probes=1)).history[0].step == 250
    assert judge_rows(rows, HealthRule(probe_class_kl=math.inf)).history == []  # the signal off
    assert judge_rows([classes(50, 2.0), classes(100, 2.0)], HealthRule(warm_up=100)).history[0].step == 100


def test_d_winning_for_a_while_warns_and_a_recovery_clears_it():
    rows = _steps(1, 300) + _steps(300, 450, real_sign=1.0, fake_sign=-1.0) + _steps(450, 700)
    judge = judge_rows(rows)
    (warned, cleared) = judge.history
    # The mean accuracy over the last 100 steps, 0.6 + 0.4 k / 100 after k winning steps, passes 0.98 at k = 96.
    assert (warned.level, warned.signal, warned.step) == (WARNING, "Health/d_acc", 395)
    assert cleared.level == HEALTHY and cleared.step > 450


def test_each_signal_keeps_its_finding_until_it_is_measured_again():
    # A bad FID is not cleared by a healthy probe, only by the next evaluation; meanwhile no
    # state is clean enough to go back to.
    judge = judge_rows(_steps(1, 451) + [{"step": 300, "Metric/fid": 10.0}, {"step": 400, "Metric/fid": 16.0},
                                         _probe(450, 0.8)])
    assert (judge.status.level, judge.status.signal) == (WARNING, "Metric/fid") and not judge.clean(450)
    judge.observe({"step": 500, "Metric/fid": 11.0})
    assert judge.status.level == HEALTHY and judge.clean(500)
    # A warning of another signal does not hide a failure: D winning, then FID blows up, then a step.
    rows = _steps(1, 300) + _steps(300, 402, real_sign=1.0, fake_sign=-1.0)
    rows += [{"step": 300, "Metric/fid": 10.0}, {"step": 400, "Metric/fid": 25.0}]
    judge = judge_rows(rows)
    assert (judge.status.level, judge.status.signal) == (FAILING, "Metric/fid")
    assert [(h.level, h.signal) for h in judge.history] == [(WARNING, "Health/d_acc"), (FAILING, "Metric/fid")]
    # One evaluation row with an FID warning and a class-KL failure: failing, on the class KL.
    judge = judge_rows([{"step": 250, "Metric/fid": 10.0, "Metric/class_kl": 1.5},
                        {"step": 300, "Metric/fid": 16.0, "Metric/class_kl": 1.5}])
    assert (judge.status.level, judge.status.signal) == (FAILING, "Metric/class_kl")


def test_nothing_is_judged_in_the_warm_up():
    judge = judge_rows([_probe(50, 0.0), _probe(100, 0.0), _probe(150, 0.0)])
    assert judge.status.level == HEALTHY
    assert judge_rows([_probe(50, 0.0), _probe(100, 0.0), _probe(250, 0.0)], HealthRule(warm_up=0)).status.level \
        == FAILING


def test_a_rollback_row_starts_the_judgement_afresh_with_its_own_warm_up():
    # As stats.jsonl has it after a rollback to step 300: the rows after it were cut.
    rows = _steps(1, 301) + [_probe(250, 0.05), _probe(300, 0.05), {"step": 300, "Rollback/count": 1}]
    rows += [_probe(350, 0.05), _probe(400, 0.05), _probe(450, 0.05), _probe(500, 0.05)]
    judge = judge_rows(rows)
    levels = [(s.level, s.step) for s in judge.history]
    # failing at 300 (two low probes); healthy at the rollback; 350 and 450 are in its warm-up
    # (200 steps, counted from 300), 500 is past it: failing again, and only then.
    assert levels == [(FAILING, 300), (HEALTHY, 300), (FAILING, 500)]
    assert judge.history[1].reason == "rolled back"


def test_class_metrics_fail_a_conditional_run_that_ignores_z():
    judge = HealthJudge()
    judge.observe({"step": 300, "Health/class_diversity_min": 0.05})
    assert judge.status.level == FAILING and "z is ignored" in judge.status.reason
    judge = HealthJudge()
    judge.observe({"step": 300, "Metric/class_kl": math.log(5)})
    assert judge.status.level == HEALTHY  # once: healthy runs' classes jump early on (the health corpus)
    judge.observe({"step": 350, "Metric/class_kl": 0.1})
    judge.observe({"step": 400, "Metric/class_kl": math.log(5)})
    assert judge.status.level == HEALTHY  # not in a row
    judge.observe({"step": 450, "Metric/class_kl": math.log(5)})
    assert judge.status.level == FAILING and judge.status.signal == "Metric/class_kl"
    assert judge.status.reason == "the classes drawn are as concentrated as half of them at 2 evaluations " \
                                  "(class KL 1.61 > 0.693)"


def test_the_support_signal_is_off_by_default_and_fails_a_run_off_the_data_when_on():
    # ring8's seed 1 under WGAN-GP: varied samples (the probe is content) on none of the modes.
    rows = _steps(1, 501) + [_probe(50 * i, 0.7) for i in range(1, 11)]
    rows += [{"step": 250, "Metric/modes": 2.0}, {"step": 500, "Metric/modes": 1.0}]
    assert judge_rows(rows).status.level == HEALTHY
    judge = judge_rows(rows, HealthRule(support_modes=1))
    assert (judge.status.level, judge.status.signal, judge.status.step) == (FAILING, "Metric/modes", 500)
    assert judge.status.reason == "the samples cover 1 of the data's modes"
    # Images: recall, where there are no classes (with classes, class coverage decides).
    low_recall = [{"step": 300, "Metric/recall": 0.02}]
    assert judge_rows(low_recall, HealthRule(support_recall=0.05)).status.signal == "Metric/recall"
    assert judge_rows([{"step": 300, "Metric/recall": 0.02, "Metric/class_kl": 0.1}],
                      HealthRule(support_recall=0.05)).status.level == HEALTHY
    assert judge_rows(low_recall).status.level == HEALTHY


# --- a watched run -------------------------------------------------------------------------------


def test_the_probe_leaves_training_exactly_as_it_was(tmp_path, toy_cfg, final_state, assert_same_state):
    watched = train(toy_cfg(tmp_path / "a", "train.health_every=2"))
    unwatched = train(toy_cfg(tmp_path / "b", "train.health_every=0"))
    assert_same_state(final_state(watched.run_dir), final_state(unwatched.run_dir))
    rows = read_stats(watched.run_dir / "stats.jsonl")
    probes = [r for r in rows if "Health/diversity" in r]
    assert [r["step"] for r in probes] == list(range(2, 13, 2))
    assert not any("Health/diversity" in r for r in read_stats(unwatched.run_dir / "stats.jsonl"))


@pytest.mark.slow
def test_a_failing_run_stops_with_a_checkpoint_when_asked(tmp_path, toy_cfg, capsys):
    from steadygan.cli import main
    from steadygan.training import health

    # A rule that calls any variety below twice the data's a collapse: this run fails at its first probes.
    monkey_rule = HealthRule(collapse_diversity=2.0, low_diversity=2.0, collapse_probes=1, warm_up=0)
    original = health.HealthJudge.__init__

    def strict(self, rule=None):
        original(self, monkey_rule)

    health.HealthJudge.__init__ = strict
    try:
        ring8 = str(Path(__file__).resolve().parents[2] / "configs" / "ring8.yaml")
        code = main(["train", "--config", ring8, "--set", "data.toy_samples=1000", "--set",
                     "data.batch_size=32", "--set", "model.width=16", "--set", "model.depth=2", "--steps", "40",
                     "--set", "train.health_every=5", "--set", "train.on_failure=stop", "--out", str(tmp_path),
                     "--no-progress"])
    finally:
        health.HealthJudge.__init__ = original
    err = capsys.readouterr().err
    assert code == 3 and "steadygan train: the run is failing (failing: the generator's samples are" in err
    (run,) = tmp_path.iterdir()
    rows = read_stats(run / "stats.jsonl")
    assert rows[-1]["step"] < 40 and {"step": 5, "Health/status": 2} in [
        {k: r[k] for k in ("step", "Health/status")} for r in rows if "Health/status" in r]
    assert (run / "checkpoints").is_dir() and list((run / "checkpoints").glob("ckpt-*.pt"))


def test_only_data_with_a_test_split_of_its_own_is_probed_for_memorisation(tmp_path, idx_dir, image_cfg):
    from steadygan.data import has_test_split, load_dataset
    from steadygan.training.build import build_run
    from steadygan.training.distributed import ProcessContext

    assert has_test_split("fashion-mnist", None) and not has_test_split("folder", str(tmp_path))
    assert not has_test_split("prepared", str(tmp_path))  # no test/ inside
    cfg = image_cfg(tmp_path, idx_dir, "train.health_every=3")
    assert build_run(cfg, ProcessContext.current()).health.probe.heldout is not None
    handed_in = load_dataset("idx", str(idx_dir), "train", 28, 1)  # data given by the caller: no split to name
    assert build_run(cfg, ProcessContext.current(), data=handed_in).health.probe.heldout is None


def test_the_probe_reads_classes_only_where_the_run_evaluates_images_anyway(tmp_path, idx_dir, image_cfg, toy_cfg):
    from steadygan.training.build import build_run
    from steadygan.training.distributed import ProcessContext

    def probe_of(cfg, ctx=None):
        return build_run(cfg, ctx or ProcessContext.current()).health.probe

    evaluating = build_run(image_cfg(tmp_path, idx_dir, "train.health_every=3", "train.eval_every=3"),
                           ProcessContext.current())
    assert evaluating.health.probe.class_kl == evaluating.periodic_eval.evaluator.class_kl  # built lazily: no training
    assert probe_of(image_cfg(tmp_path, idx_dir, "train.health_every=3")).class_kl is None  # no classifier to use
    assert probe_of(toy_cfg(tmp_path, "train.health_every=3", "train.eval_every=3")).class_kl is None  # 2-D points
    conditional = image_cfg(tmp_path, idx_dir, "train.health_every=3", "train.eval_every=3", "model.conditional=true")
    assert probe_of(conditional).class_kl is None
    # Only rank 0's status is acted on: the other ranks do not classify.
    cfg = image_cfg(tmp_path, idx_dir, "train.health_every=3", "train.eval_every=3", "train.device=cpu")
    assert probe_of(cfg, ProcessContext(rank=1, world_size=2, local_rank=1)).class_kl is None

