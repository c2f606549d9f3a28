"""Config parsing: strict keys, typed values, specs, overrides, shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from steadygan.config import diff_configs, from_dict, load_config, merge_spec_fragments, parse_spec
from steadygan.registry import ConfigError

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
    (["train.amp=fp16"], "train.amp must be"),
    (["d.betas=[0.5]"], "two numbers"),
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
