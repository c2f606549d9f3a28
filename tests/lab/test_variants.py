"""Variant specs -> config overrides: every kind, aliases, labels, combinations and errors."""

from __future__ import annotations

import pytest

from steadygan.errors import ConfigError
from steadygan.lab.variants import parse_variant, parse_variants, variant_names
from steadygan.training.build import load_config

TOY = ["data.name=ring8", "model.arch=mlp"]


def resolved(spec: str):
    """The config a variant gives on top of a toy base (validated like any run's)."""
    return load_config(None, [*TOY, *parse_variant(spec).overrides])


def names(specs):
    return [s["name"] for s in specs]


def test_baseline_changes_nothing():
    v = parse_variant("baseline")
    assert v.overrides == () and v.label == "baseline" and v.slug == "baseline"
    assert resolved("baseline").to_dict() == load_config(None, TOY).to_dict()


@pytest.mark.parametrize("spec, d, g", [
    ("r1:gamma=10", ["r1"], []),
    ("r2", ["r2"], []),
    ("zero-gp", ["zero-gp"], []),
    ("dragan", ["dragan"], []),
    ("seed-param:lambda=1", ["seed-param"], ["seed-param"]),
    ("consensus", ["consensus"], ["consensus"]),
    ("nk:eta=0.5", [], ["nk"]),
])
def test_penalties_go_to_the_players_they_allow(spec, d, g):
    cfg = resolved(spec)
    assert names(cfg.d.penalties) == d and names(cfg.g.penalties) == g
    assert cfg.loss == "non-saturating" and cfg.d.clip is None and cfg.g.clip is None


def test_penalty_options_keep_the_papers_names():
    cfg = resolved("r1:gamma=10,every=16")
    assert cfg.d.penalties == [{"name": "r1", "gamma": 10, "every": 16}]
    assert resolved("seed-param:lambda=0.1,target=output").g.penalties[0]["target"] == "output"


def test_wgan_gp_switches_to_the_wasserstein_loss():
    cfg = resolved("wgan-gp:lambda=10")
    assert cfg.loss == "wasserstein" and names(cfg.d.penalties) == ["wgan-gp"]
    assert cfg.train.n_critic == 1  # only the loss is switched; budgets stay comparable


@pytest.mark.parametrize("spec, clip", [
    ("clip-value:eps=0.01", {"name": "value", "eps": 0.01}),
    ("clip-norm:max=1", {"name": "norm", "max_norm": 1}),
    ("clip-norm:max_norm=2", {"name": "norm", "max_norm": 2}),
    ("agc", {"name": "agc"}),
    ("agc:clipping=0.02", {"name": "agc", "clipping": 0.02}),
])
def test_gradient_clippers_go_on_both_players(spec, clip):
    cfg = resolved(spec)
    assert cfg.d.clip == clip and cfg.g.clip == clip and cfg.loss == "non-saturating"


def test_weight_clip_is_for_the_critic_only_with_wasserstein_loss():
    cfg = resolved("weight-clip:c=0.05")
    assert cfg.d.clip == {"name": "weight-clip", "c": 0.05} and cfg.g.clip is None
    assert cfg.loss == "wasserstein"
    assert resolved("weight-clip").d.clip == {"name": "weight-clip"}


def test_variant_replaces_the_base_keys_it_sets():
    cfg = load_config(None, [*TOY, "d.penalties=[r2]", "g.clip=agc", *parse_variant("r1").overrides])
    assert names(cfg.d.penalties) == ["r1"] and cfg.g.clip == {"name": "agc"}


def test_labels_and_slugs():
    v = parse_variant("clip-value:eps=0.01")
    assert v.label == "clip-value:eps=0.01" and v.slug == "clip-value-eps-0.01"
    v = parse_variant("r1:gamma=10,label=Strong R1")
    assert v.label == "Strong R1" and v.slug == "strong-r1"
    assert "label" not in resolved("r1:gamma=10,label=x").d.penalties[0]
    assert parse_variant("baseline:label=plain").overrides == ()


def test_combined_variants():
    cfg = resolved("r1:gamma=1+clip-norm:max=5+nk")
    assert names(cfg.d.penalties) == ["r1"] and names(cfg.g.penalties) == ["nk"]
    assert cfg.d.clip == cfg.g.clip == {"name": "norm", "max_norm": 5}
    assert resolved("wgan-gp+weight-clip").loss == "wasserstein"


@pytest.mark.parametrize("spec, message", [
    ("r3", r"unknown variant 'r3'; choose from: baseline, r1, .*clip-value, clip-norm, agc, weight-clip"),
    ("r1:alpha=1", r"variant 'r1' has no option 'alpha'; valid options: gamma, weight, every, label"),
    ("clip-norm:eps=1", r"variant 'clip-norm' has no option 'eps'; valid options: max_norm, max, label"),
    ("clip-norm:max=1,max_norm=2", "either max_norm or its alias"),
    ("clip-value:eps=-1", r"eps must be a finite number > 0"),
    ("r1:gamma=10,weight=3", "either weight or gamma"),
    ("baseline:gamma=1", "takes no options"),
    ("agc+clip-value", "two clippers on D"),
    ("r1+r1", "penalty 'r1' twice"),
    ("r1:gamma", "is not key=value"),
    ("", "non-empty spec"),
    ("r1:label=a+agc:label=b", "label twice"),
    ("r3gan+r1", "penalty 'r1' twice"),
    ("r3gan+wgan-gp", "needs loss=wasserstein, but another part set loss=relativistic"),
    ("diffaugment+ada", "sets train.augment, which another part set differently"),
    ("diffaugment:policy=color", "has no option 'policy'"),
    ("ada:target=2", "target must be in"),
    ("spectral-norm:on=1", "has no option 'on'"),
])
def test_errors_name_the_valid_choices(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_variant(spec)


def test_variant_names_cover_every_penalty():
    from steadygan.core.penalties import PENALTIES

    assert set(PENALTIES.names()) <= set(variant_names())


def test_parse_variants_rejects_clashing_directories():
    assert [v.slug for v in parse_variants(["baseline", "r1:gamma=10"])] == ["baseline", "r1-gamma-10"]
    with pytest.raises(ConfigError, match="share the run directory"):
        parse_variants(["r1:gamma=1", "r1:gamma=1"])
    with pytest.raises(ConfigError, match="no variants"):
        parse_variants([])


def test_recipes_beyond_penalties_and_clippers():
    cfg = resolved("r3gan:gamma=0.1")
    assert cfg.loss == "relativistic"
    assert cfg.d.penalties == [{"name": "r1", "gamma": 0.1}, {"name": "r2", "gamma": 0.1}]
    assert cfg.d.betas == cfg.g.betas == [0.0, 0.99] and cfg.train.ema == 0.999
    assert resolved("relativistic+r1:gamma=1").loss == "relativistic"
    cfg = resolved("diffaugment:p=0.5+spectral-norm")
    assert cfg.model.spectral_norm is True and cfg.train.augment == {"name": "diffaugment", "p": 0.5}
    assert resolved("ada:target=0.7").train.augment == {"name": "ada", "target": 0.7}
    assert resolved("baseline").model.spectral_norm is False


def test_conditioning_recipes_set_only_their_model_key():
    from steadygan.lab.variants import parse_variant

    assert parse_variant("cbn").overrides == ("model.g_conditioning=cbn",)
    assert parse_variant("unconditional").overrides == ("model.conditional=false",)
    assert set(parse_variant("cbn+mode-seeking:weight=2").overrides) == {
        "model.g_conditioning=cbn", "g.penalties=[{name: mode-seeking, weight: 2}]"}
    with pytest.raises(ConfigError, match="cbn"):
        parse_variant("cbn:strength=2")


def test_the_heal_recipe_turns_healing_on_and_combines_with_a_stabiliser():
    from steadygan.lab.variants import parse_variant

    assert parse_variant("heal").overrides == ("train.on_failure=heal",)
    assert set(parse_variant("r1:gamma=10+heal").overrides) == {"train.on_failure=heal",
                                                               "d.penalties=[{name: r1, gamma: 10}]"}
    with pytest.raises(ConfigError, match="heal"):
        parse_variant("heal:ladder=2")
