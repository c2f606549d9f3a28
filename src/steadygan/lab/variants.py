"""Variant specs for ``steadygan compare``: a stabiliser by name -> config overrides.

Grammar: ``NAME[:key=value,...]``, several joined with ``+`` to combine stabilisers
(``r1:gamma=10+clip-norm:max=1``). Names:

* ``baseline``: the base config unchanged.
* any penalty (``r1``, ``r2``, ``wgan-gp``, ``zero-gp``, ``dragan``, ``seed-param``,
  ``consensus``, ``nk``), attached to every player the penalty allows: D for the
  input-gradient penalties, D and G for ``seed-param`` and ``consensus``, G for ``nk``.
  Options are the penalty's (its paper's weight name or ``weight``, ``every``, ...).
* clippers ``clip-value[:eps=]``, ``clip-norm[:max_norm=]`` (``max`` is an alias) and
  ``agc[:clipping=]`` on both players; ``weight-clip[:c=]`` on D only.

* recipes beyond penalties and clippers: ``relativistic`` (loss=relativistic, RpGAN);
  ``r3gan[:gamma=]`` (the R3GAN recipe: RpGAN + R1 + R2 with that gamma, Adam betas
  (0, 0.99), EMA 0.999); ``spectral-norm`` (model.spectral_norm=true); ``cbn``
  (model.g_conditioning=cbn: conditional BatchNorm in G); ``unconditional``
  (model.conditional=false: the same networks without the class, the reference of a
  conditional lab); ``heal`` (train.on_failure=heal: the plain run, going back and applying
  the heal ladder's next remedy whenever it fails); ``diffaugment[:p=]``
  and ``ada[:target=,speed_kimg=,interval=]`` (train.augment; the operation list is the
  default one here, since ``+`` joins variant parts: set another with --set train.augment).

``wgan-gp`` and ``weight-clip`` also set ``loss=wasserstein``, as in their papers (a
Lipschitz constraint is what they add to the Wasserstein critic). Only the loss is switched:
n_critic and the Adam betas the WGAN papers used are left to the base config, so that every
variant spends the same number of generator steps; set them with ``--set`` if wanted.

A variant sets only the keys it names and *replaces* them: ``r1`` sets ``d.penalties`` to
``[r1]`` whatever the base config listed there. Any part may carry ``label=TEXT``, the name
shown in reports and used (slugified) for run directories; the default is the spec itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..config import parse_spec
from ..core.clipping import CLIPPERS, build_clipper
from ..core.penalties import PENALTIES, build_penalty
from ..errors import ConfigError

BASELINE = "baseline"


@dataclass(frozen=True)
class ClipperVariant:
    """A clipper exposed as a variant name."""

    clipper: str                              # name in steadygan.core.clipping.CLIPPERS
    players: tuple[str, ...]
    aliases: dict[str, str] = field(default_factory=dict)  # variant option -> clipper option
    loss: str | None = None


CLIPPER_VARIANTS: dict[str, ClipperVariant] = {
    "clip-value": ClipperVariant("value", ("d", "g")),
    "clip-norm": ClipperVariant("norm", ("d", "g"), {"max": "max_norm"}),
    "agc": ClipperVariant("agc", ("d", "g")),
    "weight-clip": ClipperVariant("weight-clip", ("d",), loss="wasserstein"),
}

# Penalties whose paper pairs them with the Wasserstein loss.
PENALTY_LOSS = {"wgan-gp": "wasserstein"}


RECIPES = ("relativistic", "r3gan", "spectral-norm", "diffaugment", "ada", "cbn", "unconditional", "heal")


def variant_names() -> list[str]:
    """Every name a variant part may start with."""
    return [BASELINE, *PENALTIES.names(), *CLIPPER_VARIANTS, *RECIPES]


@dataclass(frozen=True)
class Variant:
    spec: str                   # as written by the user
    label: str                  # display name
    overrides: tuple[str, ...]  # ``key=value`` strings for ``load_config``

    @property
    def slug(self) -> str:
        """The label made safe for a directory name."""
        return slugify(self.label)


def slugify(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.").lower()
    if not slug:
        raise ConfigError(f"variant label {text!r} has no letters or digits to name a run directory with")
    return slug


@dataclass
class _Plan:
    """What the parts of one variant set, merged before rendering as overrides."""

    penalties: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    clips: dict[str, dict[str, Any]] = field(default_factory=dict)
    loss: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # other keys a recipe sets

    def set(self, key: str, value: Any, by: str) -> None:
        if key in self.settings and self.settings[key] != value:
            raise ConfigError(f"variant part '{by}' sets {key}, which another part set differently")
        self.settings[key] = value

    def set_loss(self, loss: str, by: str) -> None:
        if self.loss not in (None, loss):
            raise ConfigError(f"variant part '{by}' needs loss={loss}, but another part set loss={self.loss}")
        self.loss = loss

    def overrides(self) -> tuple[str, ...]:
        def flow(value: Any) -> str:
            # YAML flow style, so that load_config's YAML parsing reads it back exactly.
            text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()
            return text.removesuffix("...").strip()  # a bare scalar ends with YAML's document marker

        out = [f"{p}.penalties={flow(specs)}" for p, specs in sorted(self.penalties.items())]
        out += [f"{p}.clip={flow(spec)}" for p, spec in sorted(self.clips.items())]
        if self.loss:
            out.append(f"loss={self.loss}")
        out += [f"{key}={flow(value)}" for key, value in sorted(self.settings.items())]
        return tuple(out)


def _check_options(name: str, options: dict[str, Any], valid: list[str]) -> None:
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"variant '{name}' has no option {', '.join(repr(u) for u in unknown)}; "
                          f"valid options: {', '.join(valid + ['label'])}")


def _add_penalty(plan: _Plan, name: str, options: dict[str, Any]) -> None:
    cls = PENALTIES.get(name).factory
    valid = list(PENALTIES.get(name).parameters())
    alias = getattr(cls, "weight_alias", "weight")
    if alias != "weight":
        valid.insert(0, alias)
    _check_options(name, options, valid)
    spec = {"name": name, **options}
    for player in cls.players:
        build_penalty(spec, player)  # value checks (ranges, weight given twice), message names the penalty
        specs = plan.penalties.setdefault(player, [])
        if any(s["name"] == name for s in specs):
            raise ConfigError(f"variant lists penalty '{name}' twice")
        specs.append(dict(spec))
    if name in PENALTY_LOSS:
        plan.set_loss(PENALTY_LOSS[name], name)


def _add_clipper(plan: _Plan, name: str, options: dict[str, Any]) -> None:
    kind = CLIPPER_VARIANTS[name]
    valid = list(CLIPPERS.get(kind.clipper).parameters())
    _check_options(name, options, valid + list(kind.aliases))
    spec: dict[str, Any] = {"name": kind.clipper}
    for key, value in options.items():
        real = kind.aliases.get(key, key)
        if real in spec:
            raise ConfigError(f"variant '{name}': give either {real} or its alias, not both")
        spec[real] = value
    build_clipper(spec)
    for player in kind.players:
        if player in plan.clips:
            raise ConfigError(f"variant combines two clippers on {player.upper()} "
                              f"({plan.clips[player]['name']} and {kind.clipper})")
        plan.clips[player] = dict(spec)
    if kind.loss:
        plan.set_loss(kind.loss, name)


def _add_recipe(plan: _Plan, name: str, options: dict[str, Any]) -> None:
    from ..core.augment import AUGMENTS, build_augment

    if name == "relativistic":
        _check_options(name, options, [])
        plan.set_loss("relativistic", name)
    elif name == "spectral-norm":
        _check_options(name, options, [])
        plan.set("model.spectral_norm", True, name)
    elif name == "cbn":
        _check_options(name, options, [])
        plan.set("model.g_conditioning", "cbn", name)
    elif name == "unconditional":  # the same networks without the class: the reference a conditional run has
        _check_options(name, options, [])
        plan.set("model.conditional", False, name)
    elif name == "heal":  # not a stabiliser from the start: the run heals itself when it fails
        _check_options(name, options, [])
        plan.set("train.on_failure", "heal", name)
    elif name == "r3gan":
        _check_options(name, options, ["gamma"])
        gamma = options.get("gamma", 1.0)
        for penalty in ("r1", "r2"):
            _add_penalty(plan, penalty, {"gamma": gamma})
        plan.set_loss("relativistic", name)
        for player in ("d", "g"):
            plan.set(f"{player}.betas", [0.0, 0.99], name)
        plan.set("train.ema", 0.999, name)
    else:  # diffaugment, ada
        valid = [k for k in AUGMENTS.get(name).parameters() if k != "policy"]
        _check_options(name, options, valid)
        spec = {"name": name, **options}
        build_augment(spec)
        plan.set("train.augment", spec, name)


def parse_variant(spec: str) -> Variant:
    """``"r1:gamma=10"`` -> Variant(label="r1:gamma=10", overrides=("d.penalties=[...]",))."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a variant must be a non-empty spec such as r1:gamma=10 (got {spec!r}); "
                          f"names: {', '.join(variant_names())}")
    plan, label = _Plan(), None
    for part in spec.strip().split("+"):
        parsed = parse_spec(part.strip(), "variant")
        assert parsed is not None  # parse_spec returns None only for clippers
        name = parsed.pop("name")
        if "label" in parsed:
            if label is not None:
                raise ConfigError(f"variant '{spec}' gives label twice")
            label = str(parsed.pop("label"))
        if name == BASELINE:
            if parsed:
                raise ConfigError(f"variant 'baseline' takes no options except label (got {', '.join(parsed)})")
        elif name in CLIPPER_VARIANTS:
            _add_clipper(plan, name, parsed)
        elif name in PENALTIES:
            _add_penalty(plan, name, parsed)
        elif name in RECIPES:
            _add_recipe(plan, name, parsed)
        else:
            raise ConfigError(f"unknown variant '{name}'; choose from: {', '.join(variant_names())}")
    return Variant(spec.strip(), label if label is not None else spec.strip(), plan.overrides())


def parse_variants(specs: list[str]) -> list[Variant]:
    """Parse several specs; their slugs must differ, since each names a run directory."""
    variants = [parse_variant(s) for s in specs]
    seen: dict[str, str] = {}
    for v in variants:
        if v.slug in seen:
            raise ConfigError(f"variants '{seen[v.slug]}' and '{v.spec}' would share the run directory name "
                              f"'{v.slug}'; give one a label=... option")
        seen[v.slug] = v.spec
    if not variants:
        raise ConfigError(f"no variants given; names: {', '.join(variant_names())}")
    return variants
