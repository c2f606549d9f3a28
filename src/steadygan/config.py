"""Run configuration, parsed: dataclasses, a YAML file, and ``a.b=value`` overrides.

The bottom of the package: it imports nothing of steadygan but the errors. Unknown keys are
errors (with the valid keys listed), values are checked against their declared types and
their own ranges, and penalty and clipper specs are normalised: they may be written as
mappings (``{name: r1, gamma: 10}``) or as compact strings (``"r1:gamma=10,every=16"``).

Whether a *name* exists (a dataset, a loss, a penalty and its options, a metric) is asked of
the registry that owns it, by the builder (``steadygan.training.build.check_config``), so a
typo still fails before any data is loaded; ``steadygan.load_config`` does both.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


@dataclass
class DataConfig:
    name: str = "fashion-mnist"      # registry name (see `steadygan methods`)
    root: str | None = None          # folder with the files; default per dataset
    split: str = "train"             # train | test
    resolution: int = 28             # images are resized to resolution x resolution
    channels: int = 1                # 1 (grayscale) or 3 (RGB)
    batch_size: int = 64
    limit: int | None = None         # keep only the first N samples (quick runs)
    toy_samples: int = 100_000       # size of a generated 2-D mixture


@dataclass
class ModelConfig:
    arch: str = "dcgan"
    z_dim: int = 100
    width: int | None = None         # base channels (dcgan: 64) or hidden units (mlp: 128); None = default
    depth: int | None = None         # hidden layers (mlp only: 3)
    conditional: bool = False        # class-conditional G and projection D
    g_conditioning: str = "embed"    # conditional G: embed (class embedding joined to z) | cbn (conditional BatchNorm)
    g_norm: str | None = None        # none|batch|layer|instance; None = the architecture's default
    d_norm: str | None = None
    spectral_norm: bool = False      # on every D layer


@dataclass
class PlayerConfig:
    optimizer: str = "adam"          # adam | sgd | rmsprop
    lr: float = 2e-4
    # Optimiser options; None = the optimiser's default. Setting one the optimiser does not
    # take (momentum for adam, betas for sgd) is an error.
    betas: list[float] | None = None  # adam (0.5, 0.999)
    momentum: float | None = None    # sgd, rmsprop (0)
    nesterov: bool | None = None     # sgd (false)
    alpha: float | None = None       # rmsprop smoothing (0.99)
    penalties: list[Any] = field(default_factory=list)  # specs, see module docstring
    clip: Any = None                 # clipper spec or None


# --- train.*: one flat section of keys, declared by concern ----------------------------------
#
# A key declared with resumable() may change when a run is resumed: it says how long, how
# loudly or how fast the run goes, not what it computes (threads and compile change float
# rounding: a resume that switches them continues the run, but not bit for bit). Any other
# key that changes makes `train --resume` refuse, unless --allow-config-change.

def resumable(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING) -> Any:
    """A config field that may differ between a run and its resume."""
    return field(default=default, default_factory=factory, metadata={"resumable": True})


@dataclass
class LoopOptions:
    """What the loop trains and for how long."""

    steps: int = resumable(5000)     # generator updates
    time: float | None = resumable(None)  # wall-clock budget in seconds (whichever comes first)
    n_critic: int = 1                # D updates per G update
    seed: int = 0
    ema: float = 0.0                 # EMA decay of G's weights; 0 disables
    augment: Any = None              # D's inputs: diffaugment | ada spec (steadygan methods), None = none
    fake_history: int = 0            # D sees a pool of this many past generated images (CycleGAN: 50); 0 = none
    init_from: str | None = resumable(None)  # fine-tuning: start from this run's (or checkpoint file's) G, D and EMA
    device: str = "auto"             # auto | cpu | cuda | cuda:N
    threads: int | None = resumable(None)  # torch CPU threads; None = torch's default
    # Distributed runs (torchrun / --nproc): data.batch_size is per process, the global batch
    # is batch_size x world_size. world_size is recorded from the launch (None: not yet).
    world_size: int | None = None


@dataclass
class OutputOptions:
    """What a run writes, and how often."""

    sample_every: int = resumable(500)
    checkpoint_every: int = resumable(1000)
    keep_checkpoints: int = resumable(3)
    log_every: int = resumable(10)   # flush stats to stats.jsonl / TensorBoard every N steps
    samples: int = resumable(64)     # images in each sample grid
    out_dir: str = "runs"
    name: str = ""                   # suffix of the run directory
    progress: bool = resumable(True)  # tqdm bar


@dataclass
class SpeedOptions:
    """How fast the step computes: precision, layout, fusion, compilation."""

    amp: str = "none"                # none | bf16 | fp16 (autocast; fp16 with a gradient scaler per player)
    # The fast step (see steadygan.core.step); false gives the arithmetic of releases before them.
    share_fake: bool = False         # n_critic=1: one G forward serves the D and the G update (opt-in: BENCHMARKS)
    channels_last: bool = True       # convolutional nets and image batches in NHWC memory layout
    fused_d_forward: bool = True     # D without BatchNorm scores real and fake in one forward
    compile: str = resumable("none")  # none, or a torch.compile mode (default, reduce-overhead, ...) for G and D
    sync_batchnorm: bool = False     # CUDA: BatchNorm statistics over the global batch (SyncBatchNorm)


@dataclass
class RecoveryOptions:
    """What watches a run, and what it does when it goes wrong."""

    health_every: int = resumable(50)  # probe the generator's variety every N steps (training/health.py); 0 = never
    on_failure: str = resumable("warn")  # a failing health status: warn (log and show) | stop | heal
    heal_every: int = resumable(100)  # on_failure=heal: keep the newest healthy state every N steps (in memory)
    # on_failure=heal: the remedies tried in turn, each a list of key=value overrides (lr_scale=F
    # multiplies both learning rates); None = training/recovery.py's DEFAULT_LADDER
    heal_ladder: list[list[str]] | None = resumable(None)
    # stop | rollback: reload the last good checkpoint with lower learning rates (with on_failure=heal
    # a divergence heals instead, and on_nan, max_rollbacks and rollback_lr_factor are not used)
    on_nan: str = resumable("stop")
    max_rollbacks: int = resumable(3)  # on_nan=rollback: give up (stop) after this many
    rollback_lr_factor: float = resumable(0.5)  # on_nan=rollback: learning rates are multiplied by this each time


@dataclass
class EvalOptions:
    """Evaluation during training (steadygan.training.periodic_eval); rows go to stats.jsonl as Metric/*."""

    eval_every: int = resumable(0)   # evaluate every N generator steps; 0 = never (by steps)
    eval_seconds: float | None = resumable(None)  # or every N seconds of training time
    eval_metrics: list[str] = resumable(factory=lambda: ["fid", "kid", "pr"])  # images; 2-D: modes
    eval_n: int | None = resumable(None)  # samples per evaluation; None = 10,000 (images) / 2,500 (2-D) /
    #                                      2,000 test pairs (translation; at most the test split's)
    eval_extractor: str = resumable("classifier")  # classifier | inception | pixels (steadygan methods)
    eval_weights: str | None = resumable(None)  # weights file for eval_extractor=inception
    eval_on: str = resumable("auto")  # auto (EMA if kept, else raw) | ema | raw | both


@dataclass
class TrainConfig(EvalOptions, RecoveryOptions, SpeedOptions, OutputOptions, LoopOptions):
    """The ``train:`` section: every group's keys side by side (``train.steps``, ``train.eval_every``, ...)."""


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: str = "non-saturating"
    d: PlayerConfig = field(default_factory=PlayerConfig)
    g: PlayerConfig = field(default_factory=PlayerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# train.compile: "none", or a torch.compile mode.
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# The values of the keys that take one of a few words (each is also checked by check_ranges).
CHOICES = {"data.split": ("train", "test"), "model.g_conditioning": ("embed", "cbn"),
           "train.amp": ("none", "bf16", "fp16"),
           "train.compile": COMPILE_MODES, "train.on_nan": ("stop", "rollback"),
           "train.on_failure": ("warn", "stop", "heal"),
           "train.eval_on": ("auto", "ema", "raw", "both")}

# Keys that may change when a run is resumed (declared with resumable() above).
RESUMABLE_CHANGES = frozenset(f"train.{f.name}" for f in dataclasses.fields(TrainConfig)
                              if f.metadata.get("resumable"))


# --- specs -----------------------------------------------------------------------------------

def parse_spec(spec: Any, what: str) -> dict[str, Any] | None:
    """``"r1:gamma=10,every=16"`` or ``{name: r1, gamma: 10}`` -> ``{"name": "r1", "gamma": 10}``."""
    if what in ("clipper", "augmentation") and (spec is None or spec == "none"):
        return None
    if isinstance(spec, dict):
        if "name" not in spec:
            raise ConfigError(f"{what} spec {spec} has no 'name'")
        return dict(spec)
    if not isinstance(spec, str) or not spec:
        article = "an" if what[0] in "aeiou" else "a"
        raise ConfigError(f"{article} {what} spec must be a name, 'name:key=value,...' or a mapping (got {spec!r})")
    name, _, rest = spec.partition(":")
    out: dict[str, Any] = {"name": name.strip()}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"{what} spec '{spec}': '{item}' is not key=value")
        if key.strip() in out:
            raise ConfigError(f"{what} spec '{spec}': {key.strip()} is given twice")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{what} spec '{spec}': cannot parse the value of {key.strip()!r} "
                              f"({str(exc).splitlines()[0]})") from exc
    return out


def merge_spec_fragments(items: list[Any]) -> list[Any]:
    """Rejoin specs that YAML's flow syntax split at commas.

    ``--set d.penalties=[r1:gamma=1,every=4]`` reaches us as ``["r1:gamma=1", "every=4"]``;
    an item with ``=`` but no ``:`` cannot start a spec (names hold no ``=``), so it continues
    the previous one.
    """
    out: list[Any] = []
    for item in items:
        if isinstance(item, str) and "=" in item and ":" not in item and out and isinstance(out[-1], str):
            out[-1] = f"{out[-1]},{item}"
        else:
            out.append(item)
    return out


# --- dict -> dataclass with checking -----------------------------------------------------------

_TYPE_WORDS = {float: "a number", int: "an integer", str: "a string", bool: "true or false", type(None): "null",
               list: "a list"}


def _type_name(tp: Any) -> str:
    """How an error message names a config type: 'a number', 'null', 'a list', ..."""
    return _TYPE_WORDS[typing.get_origin(tp) or tp]  # every type a config field may have


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if tp is Any:
        return value
    if origin is list:
        if value is None:  # `--set d.penalties=` clears the list
            return []
        if not isinstance(value, (list, tuple)):
            value = [value]
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads 1e-4 (no dot) as a string; any finite float literal is a number here.
            try:
                value = float(value) if value.strip().lower().lstrip("+-") not in ("nan", "inf", "infinity") else value
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool):  # YAML 1.1 reads yes/no/on/off as booleans: name what was meant
            valid = f"one of {', '.join(CHOICES[key])}" if key in CHOICES else "a string"
            hint = "" if key in CHOICES else "; quote the word to keep it"
            raise ConfigError(f"{key}: expected {valid}, got {value!r} (YAML reads yes, no, on, off, true and "
                              f"false as true or false{hint})")
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp} for {key}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        where = f"section '{prefix}'" if prefix else "the top level"
        raise ConfigError(f"unknown key {', '.join(repr(f'{prefix}.{k}' if prefix else k) for k in unknown)} "
                          f"in {where}; valid keys: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value or {}, key)
        else:
            kwargs[name] = _coerce(value, tp, key)
    return cls(**kwargs)


def from_dict(data: dict[str, Any]) -> Config:
    """A config from nested dicts: typed, range-checked, specs normalised (names unchecked)."""
    cfg = _build(Config, data, "")
    check_ranges(cfg)
    return cfg


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b=value`` (value parsed as YAML) to a nested dict in place."""
    key, eq, raw = assignment.partition("=")
    if not eq or not key.strip():
        raise ConfigError(f"--set expects key=value (e.g. train.steps=2000), got {assignment!r}")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: '{part}' is not a section")
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        # YAML's message spans several lines (a caret under the position): its first line only.
        raise ConfigError(f"--set {key}: cannot parse value {raw!r} ({str(exc).splitlines()[0]})") from exc


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a dict of sections; ConfigError for anything else."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of sections (data:, model:, train:, ...); "
                          f"got {data!r:.60}")
    for section, value in data.items():
        if isinstance(getattr(Config(), str(section), None), (DataConfig, ModelConfig, PlayerConfig, TrainConfig)) \
                and value is not None and not isinstance(value, dict):
            raise ConfigError(f"{path}: section '{section}' must be a mapping of keys (e.g. {section}: "
                              f"{{key: value}}), got {value!r}")
    return data


def read_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults <- YAML file <- overrides, parsed and range-checked (names unchecked: see module docstring)."""
    data: dict[str, Any] = read_config_file(path) if path is not None else {}
    for assignment in overrides:
        apply_override(data, assignment)
    return from_dict(data)


def check_ranges(cfg: Config) -> None:
    """Check each value against its own range; normalise penalty, clipper and augmentation specs in place."""
    d = cfg.data
    if d.split not in ("train", "test"):
        raise ConfigError(f"data.split must be 'train' or 'test' (got {d.split!r})")
    if d.channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 or 3 (got {d.channels})")
    if d.batch_size < 1:
        raise ConfigError(f"data.batch_size must be >= 1 (got {d.batch_size})")
    m = cfg.model
    if m.g_conditioning not in CHOICES["model.g_conditioning"]:
        raise ConfigError(f"model.g_conditioning must be embed or cbn (got {m.g_conditioning!r})")
    if m.g_conditioning != "embed" and not m.conditional:
        raise ConfigError(f"model.g_conditioning={m.g_conditioning} conditions a class-conditional generator: set "
                          "model.conditional=true, or leave model.g_conditioning out")
    for player in ("d", "g"):
        _check_player(getattr(cfg, player), player)
    _check_train(cfg.train)


def _check_player(pc: PlayerConfig, player: str) -> None:
    if not pc.lr > 0:
        raise ConfigError(f"{player}.lr must be > 0 (got {pc.lr})")
    if pc.betas is not None and (len(pc.betas) != 2 or not all(0 <= b < 1 for b in pc.betas)):
        raise ConfigError(f"{player}.betas must be two numbers in [0, 1) (got {pc.betas})")
    if pc.momentum is not None and not 0 <= pc.momentum < 1:
        raise ConfigError(f"{player}.momentum must be in [0, 1) (got {pc.momentum})")
    if pc.alpha is not None and not 0 <= pc.alpha < 1:
        raise ConfigError(f"{player}.alpha must be in [0, 1) (got {pc.alpha})")
    pc.penalties = [parse_spec(s, "penalty") for s in merge_spec_fragments(pc.penalties)]
    names = [s["name"] for s in pc.penalties]
    if len(set(names)) != len(names):
        raise ConfigError(f"{player}.penalties lists a penalty twice: {names}")
    pc.clip = parse_spec(pc.clip, "clipper")


def _check_train(t: TrainConfig) -> None:
    for key in ("steps", "n_critic", "sample_every", "checkpoint_every", "keep_checkpoints", "log_every", "samples"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key} must be >= 1 (got {getattr(t, key)})")
    if t.time is not None and not t.time > 0:
        raise ConfigError(f"train.time must be > 0 seconds (got {t.time})")
    if not 0 <= t.ema < 1:
        raise ConfigError(f"train.ema must be in [0, 1) (got {t.ema}); 0 disables the EMA")
    if t.fake_history < 0:
        raise ConfigError(f"train.fake_history must be >= 0 images (got {t.fake_history}); 0 turns the history off")
    if t.health_every < 0:
        raise ConfigError(f"train.health_every must be >= 0 steps (got {t.health_every}); 0 turns the probe off")
    if t.on_failure not in CHOICES["train.on_failure"]:
        raise ConfigError(f"train.on_failure must be warn, stop or heal (got {t.on_failure!r})")
    if t.heal_every < 1:
        raise ConfigError(f"train.heal_every must be >= 1 steps (got {t.heal_every})")
    if t.on_nan not in ("stop", "rollback"):
        raise ConfigError(f"train.on_nan must be 'stop' or 'rollback' (got {t.on_nan!r})")
    if t.max_rollbacks < 0:
        raise ConfigError(f"train.max_rollbacks must be >= 0 (got {t.max_rollbacks})")
    if not 0 < t.rollback_lr_factor < 1:
        # 1 would replay the same steps (same RNG state, same rates) into the same divergence.
        raise ConfigError(f"train.rollback_lr_factor must be in (0, 1) (got {t.rollback_lr_factor})")
    if t.share_fake and t.n_critic != 1:
        raise ConfigError(f"train.share_fake=true shares one generator forward between one D and one G update; "
                          f"with train.n_critic={t.n_critic} each D update needs its own batch: set one of them back")
    t.augment = parse_spec(t.augment, "augmentation")
    if t.world_size is not None and t.world_size < 1:
        raise ConfigError(f"train.world_size must be >= 1 (got {t.world_size}); it is recorded from the launch")
    if t.compile not in COMPILE_MODES:
        raise ConfigError(f"train.compile must be one of {', '.join(COMPILE_MODES)} (got {t.compile!r}); "
                          "the modes are torch.compile's")
    if t.amp not in ("none", "bf16", "fp16"):
        raise ConfigError(f"train.amp must be 'none', 'bf16' or 'fp16' (got {t.amp!r})")
    _check_eval(t)


def _check_eval(t: EvalOptions) -> None:
    if t.eval_every < 0:
        raise ConfigError(f"train.eval_every must be >= 0 steps (got {t.eval_every}); 0 disables it")
    if t.eval_seconds is not None and not t.eval_seconds > 0:
        raise ConfigError(f"train.eval_seconds must be > 0 (got {t.eval_seconds})")
    if t.eval_on not in ("auto", "ema", "raw", "both"):
        raise ConfigError(f"train.eval_on must be auto, ema, raw or both (got {t.eval_on!r})")
    if t.eval_on in ("ema", "both") and t.ema == 0:
        raise ConfigError(f"train.eval_on={t.eval_on} needs an EMA generator: set train.ema (e.g. 0.999)")


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def diff_configs(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        dotted = f"{prefix}.{key}" if prefix else key
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_configs(a, b, dotted)
        elif a != b:
            out.append(dotted)
    return out
