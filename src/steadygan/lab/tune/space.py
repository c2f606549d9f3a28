"""What ``steadygan tune`` searches: stabilisers x strengths, and optionally learning rates and
Adam's beta1.

A space is a mapping, from a YAML file or by name::

    methods:                      # a `compare` variant name -> {its strength option: [values]}
      baseline: {}
      r1: {gamma: [0.1, 1, 10]}
      clip-value: {eps: [0.01, 0.1]}
      r3gan: {gamma: [0.1, 1]}
    lr: [0.0001, 0.0002]          # optional: both players' learning rates
    beta1: [0.0, 0.5]             # optional: both players' Adam beta1 (beta2 stays the config's)

Named spaces are built from the registries: ``penalties`` (every penalty at 0.1x, 1x and 10x
its paper's weight), ``clippers`` (every clipper at 0.1x, 1x, 10x its default), ``documents``
(the two source documents' methods, GP-GAN's penalty and GC-GAN's value clipping, against R1
and the plain GAN), ``default`` (the plain GAN, every penalty and every clipper). A point of
the space is a :class:`Cell`: one variant spec, with its learning rate and beta1 if searched.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...core.clipping import CLIPPERS
from ...core.penalties import PAIRED_TARGET, PENALTIES
from ...errors import ConfigError
from ..variants import BASELINE, CLIPPER_VARIANTS, parse_variant, slugify

SCALES = (0.1, 1.0, 10.0)


def _scaled(default: float) -> list[float]:
    return [float(f"{default * s:.3g}") for s in SCALES]


def _penalty_methods() -> dict[str, dict[str, list[float]]]:
    # Stabilisers only: a translation's L1 term to its paired target is part of the task, not one.
    return {e.name: {e.factory.weight_alias: _scaled(e.factory.default_weight)} for e in PENALTIES.entries()
            if PAIRED_TARGET not in e.factory.needs}


def _clipper_methods() -> dict[str, dict[str, list[float]]]:
    out = {}
    for name, kind in CLIPPER_VARIANTS.items():
        option, default = next(iter(CLIPPERS.get(kind.clipper).parameters().items()))
        out[name] = {option: _scaled(float(default))}
    return out


def named_spaces() -> dict[str, dict[str, Any]]:
    """The spaces ``--space`` takes by name."""
    return {
        "default": {"methods": {BASELINE: {}, **_penalty_methods(), **_clipper_methods()}},
        "penalties": {"methods": {BASELINE: {}, **_penalty_methods()}},
        "clippers": {"methods": {BASELINE: {}, **_clipper_methods()}},
        "documents": {"methods": {BASELINE: {}, "seed-param": {"lambda": [0.1, 1.0, 10.0]},
                                  "clip-value": {"eps": [0.001, 0.01, 0.1]}, "r1": {"gamma": [0.1, 1.0, 10.0]}}},
    }


def value_text(v: float) -> str:
    """A number as a spec or label writes it: ``:g`` where that is exact (so the labels and run
    folders of existing studies stay theirs), else every digit; never ``e+``, which a spec would
    read as its ``+`` combinator (1e6 is ``1e06``)."""
    text = f"{v:g}"
    if float(text) != float(v):
        text = repr(float(v))
    return text.replace("e+", "e")


@dataclass(frozen=True)
class Cell:
    """One point of a space: a variant spec, with a learning rate and beta1 when searched."""

    spec: str                      # a `compare` variant spec, e.g. "r1:gamma=10"
    lr: float | None = None
    beta1: float | None = None

    @property
    def label(self) -> str:
        extra = [f"lr={value_text(self.lr)}"] if self.lr is not None else []
        extra += [f"beta1={value_text(self.beta1)}"] if self.beta1 is not None else []
        return self.spec + (f" ({', '.join(extra)})" if extra else "")

    @property
    def slug(self) -> str:
        """The run directories' stem (as `compare` names a variant's)."""
        return slugify(self.label)

    def overrides(self, d_beta2: float, g_beta2: float) -> list[str]:
        """Config overrides of the cell; ``d_beta2``, ``g_beta2``: each player's Adam beta2 in
        the base config, kept when beta1 is searched."""
        out = list(parse_variant(self.spec).overrides)
        if self.lr is not None:
            out += [f"d.lr={self.lr}", f"g.lr={self.lr}"]
        if self.beta1 is not None:
            out += [f"d.betas=[{self.beta1},{d_beta2}]", f"g.betas=[{self.beta1},{g_beta2}]"]
        return out

    def params(self) -> dict[str, Any]:
        """The cell as Optuna parameters (the strength is conditional on the method)."""
        name, _, option = self.spec.partition(":")
        out: dict[str, Any] = {"method": name}
        if option:
            key, _, value = option.partition("=")
            out[f"{name}.{key}"] = float(value)
        if self.lr is not None:
            out["lr"] = self.lr
        if self.beta1 is not None:
            out["beta1"] = self.beta1
        return out


@dataclass(frozen=True)
class Space:
    methods: dict[str, dict[str, list[float]]]   # variant name -> {option: values} ({} : no option)
    lr: tuple[float, ...] = ()
    beta1: tuple[float, ...] = ()
    name: str = ""

    def cells(self) -> list[Cell]:
        """Every point, in the file's order (the grid)."""
        specs = []
        for method, options in self.methods.items():
            if not options:
                specs.append(method)
            for key, values in options.items():
                specs += [f"{method}:{key}={value_text(v)}" for v in values]
        grid = itertools.product(specs, self.lr or (None,), self.beta1 or (None,))
        return [Cell(spec, lr, b1) for spec, lr, b1 in grid]

    def without(self, specs: set[str], lr: set[float] = frozenset(), beta1: set[float] = frozenset()) -> Space:
        """The space less the variant specs ``specs`` (a method left with no value goes), and
        less the learning rates ``lr`` and beta1 values ``beta1``."""
        methods: dict[str, dict[str, list[float]]] = {}
        for method, options in self.methods.items():
            if not options:
                if method not in specs:
                    methods[method] = {}
                continue
            kept = {k: [v for v in values if f"{method}:{k}={value_text(v)}" not in specs]
                    for k, values in options.items()}
            if all(kept.values()):
                methods[method] = kept
        return Space(methods, tuple(v for v in self.lr if v not in lr), tuple(v for v in self.beta1 if v not in beta1),
                     self.name)

    def cell_of(self, params: dict[str, Any]) -> Cell:
        """The cell an Optuna trial's parameters name."""
        method = params["method"]
        options = self.methods[method]
        spec = method
        for key in options:
            spec = f"{method}:{key}={value_text(params[f'{method}.{key}'])}"
        return Cell(spec, params.get("lr"), params.get("beta1"))

    def suggest(self, trial: Any) -> Cell:
        """Draw a cell through an Optuna trial (define-by-run: the strength depends on the method)."""
        method = trial.suggest_categorical("method", list(self.methods))
        params: dict[str, Any] = {"method": method}
        for key, values in self.methods[method].items():
            params[f"{method}.{key}"] = trial.suggest_categorical(f"{method}.{key}", list(values))
        if self.lr:
            params["lr"] = trial.suggest_categorical("lr", list(self.lr))
        if self.beta1:
            params["beta1"] = trial.suggest_categorical("beta1", list(self.beta1))
        return self.cell_of(params)


def _numbers(value: Any, where: str) -> tuple[float, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{where}: expected a list of numbers (got {value!r})")
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}: a value is listed twice ({value!r})")
    return tuple(float(v) for v in values)


def parse_space(data: Any, where: str) -> Space:
    """A space from its mapping; a one-line ConfigError naming ``where`` and the entry at fault."""
    if not isinstance(data, dict) or not isinstance(data.get("methods"), dict) or not data["methods"]:
        raise ConfigError(f"{where}: a space is a mapping with 'methods:' (variant name -> {{option: [values]}}) "
                          "and optionally 'lr:' and 'beta1:'")
    unknown = sorted(set(data) - {"methods", "lr", "beta1"})
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)}; a space has methods, lr, beta1")
    methods: dict[str, dict[str, list[float]]] = {}
    for name, options in data["methods"].items():
        at = f"{where}: methods.{name}"
        options = options or {}
        if not isinstance(options, dict) or len(options) > 1:
            raise ConfigError(f"{at}: expected {{}} or one option with its values, e.g. {{gamma: [1, 10]}}")
        methods[str(name)] = {str(k): list(_numbers(v, f"{at}.{k}")) for k, v in options.items()}
        if "+" in str(name):
            raise ConfigError(f"{at}: one method per entry (combine stabilisers in a config, not here)")
    space = Space(methods, _numbers(data["lr"], f"{where}: lr") if "lr" in data else (),
                  _numbers(data["beta1"], f"{where}: beta1") if "beta1" in data else ())
    for lr in space.lr:
        if not lr > 0:
            raise ConfigError(f"{where}: lr must be > 0 (got {lr:g})")
    for b in space.beta1:
        if not 0 <= b < 1:
            raise ConfigError(f"{where}: beta1 must be in [0, 1) (got {b:g})")
    for cell in space.cells():
        try:
            parse_variant(cell.spec)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {cell.spec}: {exc}") from None
    return space


def load_space(name_or_path: str) -> Space:
    """A named space (``default``, ``penalties``, ``clippers``, ``documents``) or a YAML file."""
    named = named_spaces()
    if name_or_path in named:
        space = parse_space(named[name_or_path], f"space '{name_or_path}'")
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"--space {name_or_path}: neither a file nor a named space ({', '.join(named)})")
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the space ({str(exc).splitlines()[0]})") from None
        space = parse_space(data, str(path))
    return Space(space.methods, space.lr, space.beta1, name_or_path)
