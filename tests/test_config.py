"""Config parsing: strict keys, typed values, specs, overrides, shipped configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from steadygan.config import TrainConfig, diff_configs, from_dict, merge_spec_fragments, parse_spec
from steadygan.errors import ConfigError
from steadygan.metrics.evaluate import IMAGE_METRICS
from steadygan.training.build import load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_defaults_validate():
    cfg = load_config()
    assert cfg.data.name == "fashion-mnist" and cfg.loss == "non-saturating" and cfg.d.penalties == []


@pytest.mark.parametrize("sets, message", [
    (["train.stepz=3"], "unknown key 'train.stepz'.*valid keys: .*steps"),
    (["trian.steps=3"], "unknown key 'trian'.*valid keys"),
    (["train.steps=many"], "train.steps: expected an integer"),
    (["train.steps=0"], "train.steps must be >= 1"),
    (["loss=wgan"], "unknown loss 'wgan'; choose from: .*wasserstein"),
    (["model.arch=resnet"], "unknown model 'resnet'; choose from"),
    (["data.name=celeba"], "unknown dataset 'celeba'"),
    (["d.optimizer=adagrad"], "unknown optimizer 'adagrad'; choose from: adam, sgd, rmsprop"),
    (["d.penalties=[r1:gamma=1,evry=2]"], "penalty 'r1' has no option 'evry'"),
    (["d.clip=value:epsilon=0.1"], "clipper 'value' has no option 'epsilon'"),
    (["g.penalties=[r1]"], "cannot be attached to the generator"),
    (["d.penalties=[r1,r1]"], "lists a penalty twice"),
    (["train.ema=1.5"], r"train.ema must be in \[0, 1\)"),
    (["train.amp=fp8"], "train.amp must be .none., .bf16. or .fp16."),
    (["d.betas=[0.5]"], "two numbers"),
    (["model.depth=4"], "model.depth does not apply to model 'dcgan'"),
    (["model.arch=pix2pix", "model.depth=0"], "model.depth must be >= 1"),
    (["model.arch=seed-gc", "model.depth=2"], "model.depth does not apply to model 'seed-gc'"),
    (["d.momentum=0.9"], "d.momentum does not apply to optimizer 'adam'"),
    (["g.optimizer=sgd", "g.betas=[0.5, 0.9]"], "g.betas does not apply to optimizer 'sgd'"),
    (["d.optimizer=rmsprop", "d.nesterov=true"], "d.nesterov does not apply to optimizer 'rmsprop'"),
    (["d.optimizer=sgd", "d.momentum=1.0"], r"d.momentum must be in \[0, 1\)"),
    (["model.arch=mlp", "model.width=0"], "model.width must be >= 1"),
    (["train.time=abc"], r"train.time: expected a number or null, got 'abc'"),
    (["model.width=abc"], r"model.width: expected an integer or null, got 'abc'"),
    (["d.betas=abc"], r"d.betas: expected a list or null, got 'abc'"),
    (["train.name=[1]"], r"train.name: expected a string, got \[1\]"),
    (["d.lr=.inf"], r"d.lr: expected a finite number, got inf"),
    (["g.lr=.nan"], r"g.lr: expected a finite number, got nan"),
    (["g.lr=inf"], r"g.lr: expected a number, got 'inf'"),
    (["train.ema=1e-3x"], r"train.ema: expected a number, got '1e-3x'"),
    (["d.penalties=r1:gamma=["], r"penalty spec 'r1:gamma=\[': cannot parse the value of 'gamma'"),
    (["train.on_nan=rollback", "train.rollback_lr_factor=1"], r"rollback_lr_factor must be in \(0, 1\)"),
    (["d.betas=[0.5, 1.0]"], r"d.betas must be two numbers in \[0, 1\)"),
    (["g.betas=[1, 0.9]"], r"g.betas must be two numbers in \[0, 1\)"),
    (["g.betas=[-0.1, 0.9]"], r"g.betas must be two numbers in \[0, 1\)"),
    (["data.channels=2"], "data.channels must be 1 or 3"),
    (["train.progress=maybe"], "expected true or false"),
    (["nonsense"], "--set expects key=value"),
])
def test_bad_values_are_clear_errors(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, sets)


def test_betas_at_the_edges_of_their_range_are_accepted():
    cfg = load_config(None, ["d.betas=[0, 0.99]", "g.betas=[0.0, 0.999999]"])
    assert cfg.d.betas == [0.0, 0.99] and cfg.g.betas == [0.0, 0.999999]


def test_spec_strings_and_mappings():
    assert parse_spec("r1:gamma=10,every=16", "penalty") == {"name": "r1", "gamma": 10, "every": 16}
    assert parse_spec({"name": "r2"}, "penalty") == {"name": "r2"}
    assert parse_spec("none", "clipper") is None
    assert merge_spec_fragments(["r1:gamma=1", "every=4", "r2"]) == ["r1:gamma=1,every=4", "r2"]
    cfg = load_config(None, ["d.penalties=[r1:gamma=1,every=4, r2]", "d.clip=norm:max_norm=2"])
    assert cfg.d.penalties == [{"name": "r1", "gamma": 1, "every": 4}, {"name": "r2"}]
    assert cfg.d.clip == {"name": "norm", "max_norm": 2}
    cfg = load_config(None, ["d.penalties=r1:gamma=3"])  # a single spec without brackets
    assert cfg.d.penalties == [{"name": "r1", "gamma": 3}]


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {steps: 7, seed: 3}\nd: {lr: 0.001}\n")
    cfg = load_config(path, ["train.steps=9"])
    assert (cfg.train.steps, cfg.train.seed, cfg.d.lr) == (9, 3, 0.001)


def test_bad_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_round_trip_through_dict():
    cfg = load_config(None, ["d.penalties=[wgan-gp]", "loss=wasserstein"])
    again = from_dict(cfg.to_dict())
    assert again == cfg and diff_configs(cfg.to_dict(), again.to_dict()) == []


def test_diff_configs_lists_dotted_keys():
    a = load_config().to_dict()
    b = load_config(None, ["train.steps=3", "loss=hinge"]).to_dict()
    assert diff_configs(a, b) == ["loss", "train.steps"]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_validate_and_are_short(path):
    load_config(path)
    assert len(path.read_text().splitlines()) <= 30


def test_options_an_optimizer_takes_reach_it():
    import torch

    from steadygan.core.optim import build_optimizer

    w = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(w, load_config(None, ["d.optimizer=sgd", "d.momentum=0.9", "d.nesterov=true"]).d)
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["nesterov"] is True
    rms = build_optimizer(w, load_config(None, ["d.optimizer=rmsprop", "d.alpha=0.9", "d.momentum=0.5"]).d)
    assert rms.defaults["alpha"] == 0.9 and rms.defaults["momentum"] == 0.5
    adam = build_optimizer(w, load_config(None, ["d.betas=[0.1, 0.2]"]).d)
    assert adam.defaults["betas"] == (0.1, 0.2)
    assert build_optimizer(w, load_config().d).defaults["betas"] == (0.5, 0.999)  # the DCGAN default


def test_format_1_configs_upgrade_to_what_they_ran():
    """Format 1 wrote every option, used or not; the upgrade unsets only the ignored ones."""
    from steadygan.training.checkpoint import upgrade_config

    old = load_config().to_dict()
    old["model"].update(width=32, depth=3)
    for player in ("d", "g"):
        old[player].update(betas=[0.5, 0.9], momentum=0.0, nesterov=False, alpha=0.99)
    old["g"]["optimizer"] = "sgd"
    old["g"]["momentum"] = 0.7
    cfg = from_dict(upgrade_config(old))
    assert cfg.model.width == 32 and cfg.model.depth is None
    assert cfg.d.betas == [0.5, 0.9] and cfg.d.momentum is None and cfg.d.alpha is None
    assert cfg.g.momentum == 0.7 and cfg.g.nesterov is False and cfg.g.betas is None


def test_float_literals_yaml_reads_as_strings_are_numbers():
    """YAML 1.1 reads 1e-4 (no dot) as a string; the --help example `--set d.lr=1e-4` must work."""
    cfg = load_config(None, ["d.lr=1e-4", "g.lr=1E-3", "train.time=2e2", "train.ema=+5e-1"])
    assert (cfg.d.lr, cfg.g.lr, cfg.train.time, cfg.train.ema) == (1e-4, 1e-3, 200.0, 0.5)


@pytest.mark.parametrize("text, message", [
    ("- 1\n- 2\n", r"a config is a mapping of sections .*; got \[1, 2\]"),
    ("5\n", r"a config is a mapping of sections .*; got 5"),
    ("train: 5\n", r"section 'train' must be a mapping of keys"),
])
def test_config_files_of_the_wrong_shape_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, ["train.steps=2"])


def test_an_empty_set_clears_a_list():
    assert load_config(None, ["d.penalties=[r1]", "d.penalties="]).d.penalties == []


def test_format_1_upgrade_of_a_config_without_sections():
    from steadygan.training.checkpoint import upgrade_config

    assert from_dict(upgrade_config({})) == load_config()


def test_diff_configs_sees_keys_on_one_side_and_sections_replaced_by_values():
    assert diff_configs({"a": 1}, {"a": 1, "b": 2}) == ["b"]
    assert diff_configs({"a": 1, "c": 3}, {"a": 1}) == ["c"]
    assert diff_configs({"s": {"x": 1}}, {"s": 5}) == ["s"]
    assert diff_configs({"s": {"x": 1}}, {"s": {"x": 2}}) == ["s.x"]


# --- closed from surviving mutants (benchmarks/mutation_module.py config) ------------------------

def _config_error(*overrides: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(None, list(overrides))
    return str(exc.value)


def test_evaluation_options_are_checked_with_their_whole_text():
    assert _config_error("train.eval_seconds=0") == "train.eval_seconds must be > 0 (got 0.0)"
    load_config(None, ["train.eval_seconds=0.5"])  # a fraction of a second is a time
    assert _config_error("train.eval_metrics=[fid,nope]") == ("train.eval_metrics: unknown nope; choose from "
                                                              + ", ".join(IMAGE_METRICS))
    assert _config_error("train.eval_on=sometimes") == "train.eval_on must be auto, ema, raw or both (got 'sometimes')"
    for on in ("ema", "both"):
        assert _config_error(f"train.eval_on={on}", "train.ema=0") == (
            f"train.eval_on={on} needs an EMA generator: set train.ema (e.g. 0.999)")
        load_config(None, [f"train.eval_on={on}", "train.ema=0.5"])
    for on in ("auto", "raw"):
        load_config(None, [f"train.eval_on={on}", "train.ema=0"])


def test_compile_modes_and_the_penalties_compile_cannot_run_are_named():
    assert _config_error("train.compile=fast") == (
        "train.compile must be one of none, default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs "
        "(got 'fast'); the modes are torch.compile's")
    assert _config_error("train.compile=default", "d.penalties=[r1,wgan-gp]", "g.penalties=[seed-param]") == (
        "train.compile=default: r1, seed-param, wgan-gp differentiate(s) a gradient of the networks (a double "
        "backward), which torch.compile does not support; set train.compile=none with these penalties")
    load_config(None, ["train.compile=none", "d.penalties=[r1]"])


def test_a_spec_that_is_not_a_name_says_a_or_an():
    with pytest.raises(ConfigError) as exc:
        parse_spec(3, "penalty")
    assert str(exc.value) == "a penalty spec must be a name, 'name:key=value,...' or a mapping (got 3)"
    with pytest.raises(ConfigError) as exc:
        parse_spec("", "augmentation")
    assert str(exc.value) == "an augmentation spec must be a name, 'name:key=value,...' or a mapping (got '')"
    assert parse_spec("diffaugment:policy=a=b", "augmentation") == {"name": "diffaugment", "policy": "a=b"}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+Infinity", " NaN "])
def test_a_float_option_refuses_non_finite_text(value):
    # Kept as text rather than read as a float: the error names the value as it was written.
    assert _config_error(f"d.lr={value}") == f"d.lr: expected a number, got {value.strip()!r}"


def test_the_dumped_config_keeps_the_sections_in_their_order():
    from steadygan.config import dump_config

    text = dump_config(load_config(None, []))
    tops = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith(" ")]
    assert tops == list(load_config(None, []).to_dict())  # data, model, ... as written, not sorted
    assert tops != sorted(tops)


@pytest.mark.parametrize("overrides,text", [
    (["data.split=val"], "data.split must be 'train' or 'test' (got 'val')"),
    (["data.batch_size=0"], "data.batch_size must be >= 1 (got 0)"),
    (["d.lr=0"], "d.lr must be > 0 (got 0.0)"),
    (["g.optimizer=sgd", "g.momentum=1"], "g.momentum must be in [0, 1) (got 1.0)"),
    (["d.optimizer=rmsprop", "d.alpha=1"], "d.alpha must be in [0, 1) (got 1.0)"),
    (["d.optimizer=rmsprop", "d.alpha=-0.1"], "d.alpha must be in [0, 1) (got -0.1)"),
    (["train.time=0"], "train.time must be > 0 seconds (got 0.0)"),
    (["train.ema=1"], "train.ema must be in [0, 1) (got 1.0); 0 disables the EMA"),
    (["train.max_rollbacks=-1"], "train.max_rollbacks must be >= 0 (got -1)"),
    (["train.rollback_lr_factor=0"], "train.rollback_lr_factor must be in (0, 1) (got 0.0)"),
])
def test_each_limit_is_refused_with_its_whole_text(overrides, text):
    assert _config_error(*overrides) == text


@pytest.mark.parametrize("overrides", [
    ["data.split=test"], ["data.batch_size=1"], ["g.optimizer=sgd", "g.momentum=0"],
    ["d.optimizer=rmsprop", "d.alpha=0"], ["d.optimizer=rmsprop", "d.alpha=0.5"], ["train.time=0.5"],
    ["train.ema=0"], ["train.max_rollbacks=0"], ["train.rollback_lr_factor=0.5"],
    ["train.share_fake=true", "train.n_critic=1"],
])
def test_each_limit_s_edge_that_is_allowed_is_allowed(overrides):
    load_config(None, overrides)


def test_a_shared_fake_batch_needs_one_critic_step():
    assert _config_error("train.share_fake=true", "train.n_critic=2") == (
        "train.share_fake=true shares one generator forward between one D and one G update; with train.n_critic=2 "
        "each D update needs its own batch: set one of them back")


@pytest.mark.parametrize("spec,text", [
    ("r1:gamma", "penalty spec 'r1:gamma': 'gamma' is not key=value"),
    ("r1:gamma=1,gamma=2", "penalty spec 'r1:gamma=1,gamma=2': gamma is given twice"),
    ("r1:gamma=[1", "penalty spec 'r1:gamma=[1': cannot parse the value of 'gamma' (while parsing a flow sequence)"),
])
def test_a_malformed_spec_is_named_with_its_whole_text(spec, text):
    with pytest.raises(ConfigError) as exc:
        parse_spec(spec, "penalty")
    assert str(exc.value) == text


def test_unknown_keys_and_non_mappings_are_named_where_they_are():
    with pytest.raises(ConfigError) as exc:
        from_dict({"trian": {}, "data": {}})
    assert str(exc.value).startswith("unknown key 'trian' in the top level; valid keys: ")
    with pytest.raises(ConfigError) as exc:
        from_dict({"train": {"stpes": 3, "evl": 1}})
    valid = ", ".join(sorted(f.name for f in dataclasses.fields(TrainConfig)))
    assert str(exc.value) == f"unknown key 'train.evl', 'train.stpes' in section 'train'; valid keys: {valid}"
    with pytest.raises(ConfigError) as exc:
        from_dict([1, 2])
    assert str(exc.value) == "config: expected a mapping, got [1, 2]"
    with pytest.raises(ConfigError) as exc:
        from_dict({"train": 3})
    assert str(exc.value) == "train: expected a mapping, got 3"


def test_the_augmentation_and_mixed_precision_options_are_checked():
    cfg = load_config(None, ["train.augment=diffaugment:p=0.5"])
    assert cfg.train.augment == {"name": "diffaugment", "p": 0.5}  # the spec, parsed
    assert _config_error("train.augment=diffaugment:p=2") == "augment p must be in [0, 1] (got 2)"
    for amp in ("none", "bf16", "fp16"):
        load_config(None, [f"train.amp={amp}"])
    assert _config_error("train.amp=fp8") == "train.amp must be 'none', 'bf16' or 'fp16' (got 'fp8')"


def test_override_and_item_errors_are_one_line_and_name_their_key():
    assert _config_error("train.steps=[1") == ("--set train.steps: cannot parse value '[1' "
                                               "(while parsing a flow sequence)")
    with pytest.raises(ConfigError) as exc:
        load_config("configs/baseline.yaml", ["train.steps.x=1"])
    assert str(exc.value) == "--set train.steps.x: 'steps' is not a section"
    assert _config_error("train.eval_metrics=[fid, 3]") == "train.eval_metrics[1]: expected a string, got 3"
    assert load_config(None, ["g.optimizer=sgd", "g.betas=null"]).g.betas is None  # Optional: null is a value
    assert _config_error("train.on_nan=retry") == "train.on_nan must be 'stop' or 'rollback' (got 'retry')"
    assert _config_error("train.world_size=0") == ("train.world_size must be >= 1 (got 0); it is recorded from the "
                                                   "launch")
    assert _config_error("train.eval_every=-1") == "train.eval_every must be >= 0 steps (got -1); 0 disables it"
    assert _config_error("train.eval_n=3") == ("3 samples is too few for fid, kid, pr: at least 4 are needed (10,000 "
                                               "is the usual protocol for images, 2,500 for 2-D data)")
    with pytest.raises(ConfigError) as exc:
        parse_spec({"gamma": 1}, "penalty")
    assert str(exc.value) == "penalty spec {'gamma': 1} has no 'name'"


@pytest.mark.parametrize("assignment, message", [
    ("train.compile=yes", "train.compile: expected one of none, default, reduce-overhead, max-autotune, "
                          "max-autotune-no-cudagraphs, got True (YAML reads yes, no, on, off, true and false as "
                          "true or false)"),
    ("train.on_nan=off", "train.on_nan: expected one of stop, rollback, got False (YAML reads yes, no, on, off, "
                         "true and false as true or false)"),
    ("train.name=no", "train.name: expected a string, got False (YAML reads yes, no, on, off, true and false as "
                      "true or false; quote the word to keep it)"),
])
def test_a_yaml_boolean_where_a_word_is_expected_names_the_valid_words(assignment, message):
    assert _config_error(assignment) == message


def test_the_keys_a_resume_may_change_are_declared_where_each_is_defined():
    import dataclasses

    from steadygan.config import RESUMABLE_CHANGES, EvalOptions, LoopOptions, TrainConfig

    assert RESUMABLE_CHANGES == {
        "train.steps", "train.time", "train.sample_every", "train.checkpoint_every", "train.keep_checkpoints",
        "train.log_every", "train.progress", "train.samples", "train.threads", "train.eval_every",
        "train.eval_seconds", "train.eval_metrics", "train.eval_n", "train.eval_extractor", "train.eval_weights",
        "train.eval_on", "train.init_from", "train.on_nan", "train.max_rollbacks", "train.rollback_lr_factor",
        "train.compile", "train.health_every", "train.on_failure", "train.heal_every", "train.heal_ladder"}
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert fields["steps"].metadata == {"resumable": True} and fields["seed"].metadata == {}
    assert fields["eval_metrics"].default_factory() == ["fid", "kid", "pr"]  # a list of its own per config
    assert TrainConfig().eval_metrics is not TrainConfig().eval_metrics
    assert {f.name for f in dataclasses.fields(LoopOptions)} < set(fields)
    assert [f.name for f in dataclasses.fields(EvalOptions)] == [
        "eval_every", "eval_seconds", "eval_metrics", "eval_n", "eval_extractor", "eval_weights", "eval_on"]
