"""The one place that makes every part of a run from its config.

Training, resume, sampling, evaluation, completion and the lab all come through here:

* :func:`check_config` asks each registry about the names a config holds (a dataset, a
  model and its options, a loss, each penalty and clipper with its options, an augmentation,
  the metrics and extractor), so a typo fails before any data is loaded;
  :func:`load_config` parses a file and ``--set`` overrides and checks them.
* :func:`build_data`, :func:`build_pair`: the data and the networks. A generator rebuilt from
  a checkpoint has exactly the shape it was trained with: the data's description (sample
  shape, classes) is stored in every checkpoint and read back, not re-derived.
* :func:`build_run`: everything a run trains with (:class:`RunParts`): data and sampler on the
  device, the pair, the two players (optimiser, penalties, clipper, gradient scaler), the
  EMA, the augmentation, the periodic evaluation, the autocast context, the health monitor.
  The trainer receives them and keeps the loop.

The order of construction is part of the arithmetic: the global RNG is seeded first and the
networks draw their initial weights from it, so the same config builds the same run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager

import numpy as np
import torch

from ..config import Config, EvalOptions, PlayerConfig, TrainConfig, from_dict, read_config
from ..core.augment import Augment, AugmentedDiscriminator, build_augment
from ..core.clipping import build_clipper
from ..core.ema import Ema
from ..core.history import FakeHistory
from ..core.losses import LOSSES, AdversarialLoss, build_loss
from ..core.optim import build_optimizer, optimizer_options
from ..core.pair import GanPair, has_batch_coupling
from ..core.penalties import (
    CLASS_LOGITS,
    INPUT_GRADIENT_PENALTIES,
    PAIRED_TARGET,
    PENALTIES,
    TRANSLATE,
    build_penalty,
)
from ..core.step import Player
from ..data import DATASETS, BatchSampler, DataInfo, InMemoryData, dataset_protocol, has_test_split, load_dataset
from ..errors import ConfigError, DataError
from ..metrics import EXTRACTORS, Evaluator
from ..metrics.evaluate import check_metrics, check_sample_count
from ..models import MODELS, build_models, check_model_options, is_convolutional, is_import_path, revert_sync_batchnorm
from .cycle_evaluation import CycleScores
from .distributed import ProcessContext
from .fast_paths import can_fuse_real_and_fake, compile_players, to_channels_last
from .health import HealthMonitor, Probe
from .periodic_eval import PeriodicEval
from .recovery import DEFAULT_LADDER, Remedy, apply_remedy, legacy_ladder, parse_rung

# --- the config, checked by the registries that own its names ---------------------------------


def check_config(cfg: Config) -> Config:
    """ConfigError for a name no registry knows, or an option its factory does not take (the
    heal ladder's configs included); returns ``cfg``."""
    _check_names(cfg)
    recovery_ladder(cfg)
    return cfg


def _check_names(cfg: Config) -> None:
    DATASETS.get(cfg.data.name)
    check_model_options(cfg.model.arch, cfg.model.width, cfg.model.depth)  # a registered name or an import path
    LOSSES.get(cfg.loss)
    for player in ("d", "g"):
        pc: PlayerConfig = getattr(cfg, player)
        optimizer_options(pc, player)
        for spec in pc.penalties:
            build_penalty(spec, player)
        build_clipper(pc.clip)
    build_augment(cfg.train.augment)
    _check_compile(cfg)
    _check_eval_names(cfg.train)
    _check_translation(cfg)
    classifying = _penalties_needing(cfg, CLASS_LOGITS)
    if classifying and not cfg.model.conditional:
        raise ConfigError(f"{', '.join(classifying)} classifies samples by their class: it needs a class-conditional "
                          "model (model.conditional=true) on labelled data")
    untrained = sorted({s["name"] for s in cfg.g.penalties if s["name"] in classifying}
                       - {s["name"] for s in cfg.d.penalties})
    if untrained:
        raise ConfigError(f"g.penalties has {', '.join(untrained)} and d.penalties does not: D's class head would "
                          "never learn to classify, and G would chase a random one; name it on both (or on D alone)")


def translates(arch: str) -> bool:
    """Whether a registered architecture is conditioned on an input image (a translation pair)."""
    return not is_import_path(arch) and bool(MODELS.get(arch).info.get("translates"))


def _check_translation(cfg: Config) -> None:
    """A translation pair needs paired data (pix2pix) or two domains (cyclegan), and the terms
    that compare an output with a target or a cycle need their own kind; what does not carry
    over to translation yet is refused here, before any data is loaded."""
    info = DATASETS.get(cfg.data.name).info
    paired, domains = bool(info.get("paired")), bool(info.get("domains"))
    arch = cfg.model.arch
    cycle = not is_import_path(arch) and bool(MODELS.get(arch).info.get("cycle"))
    paired_sets = ", ".join(e.name for e in DATASETS.entries() if e.info.get("paired"))
    domain_sets = ", ".join(e.name for e in DATASETS.entries() if e.info.get("domains"))
    needs = {need: _penalties_needing(cfg, need) for need in (PAIRED_TARGET, TRANSLATE)}
    if needs[TRANSLATE] and not cycle:
        raise ConfigError(f"{', '.join(needs[TRANSLATE])} translates images back and forth between two domains: it "
                          f"needs model.arch=cyclegan on unpaired data (data.name: {domain_sets})")
    if needs[PAIRED_TARGET] and not (translates(arch) and paired):
        raise ConfigError(f"{', '.join(needs[PAIRED_TARGET])} pulls each output towards its input's own target: it "
                          f"needs a translation model (model.arch=pix2pix) on paired data (data.name: {paired_sets})")
    if not translates(arch):
        if domains:
            raise ConfigError(f"dataset '{cfg.data.name}' holds joint samples of two domains for unpaired translation: "
                              "train it with model.arch=cyclegan (start from configs/sneakers2boots.yaml)")
        if paired:
            warnings.warn(f"dataset '{cfg.data.name}' pairs input images with targets, and model '{arch}' learns the "
                          "targets alone; to translate, start from configs/edges2fashion.yaml (model.arch=pix2pix "
                          "with the l1-target term)", stacklevel=2)
        return
    if cycle and "cycle" not in {s["name"] for s in cfg.g.penalties}:
        warnings.warn(f"model '{arch}' without the cycle term (g.penalties has no cycle) is two unrelated GANs: "
                      "nothing ties a translation to its input; add g.penalties=[cycle, identity]", stacklevel=2)
    if cycle and not domains:
        raise ConfigError(f"model '{arch}' translates between two unpaired domains: it needs unpaired data (data.name: "
                          f"{domain_sets}); dataset '{cfg.data.name}' has {'pairs' if paired else 'one domain'}")
    if not cycle and not paired:
        has = "unpaired domains (model.arch=cyclegan)" if domains else "no input images"
        raise ConfigError(f"model '{arch}' translates input images: it needs paired data (data.name: {paired_sets}); "
                          f"dataset '{cfg.data.name}' has {has}")
    if cfg.model.conditional:
        raise ConfigError(f"model '{arch}' is conditioned on its input image; set model.conditional=false")


def recovery_ladder(cfg: Config, notes: list[str] | None = None) -> list[Remedy]:
    """The remedies a failing run tries in turn (training/recovery.py), each checked on the
    config it makes: a rung of the user's ladder that does not make a valid config is an
    error; a rung of the default ladder that does not apply to this run (DiffAugment on 2-D
    points, R1 under torch.compile) is left out, and so is any rung that would change nothing
    (the run would fail again where it failed). ``notes`` receives what was left out, and why."""
    t = cfg.train
    if t.on_failure != "heal":
        return legacy_ladder(t) if t.on_nan == "rollback" else []
    given = t.heal_ladder is not None
    if given and not t.heal_ladder:
        raise ConfigError("train.heal_ladder is empty: give at least one remedy, or train.on_failure=stop")
    ladder, data = [], cfg.to_dict()
    for i, rung in enumerate(t.heal_ladder if given else DEFAULT_LADDER):
        where = f"train.heal_ladder[{i}]" if given else f"the default heal ladder's remedy {i + 1}"
        remedy = parse_rung(rung, where)
        try:
            healed = _checked_remedy(cfg, data, remedy)
        except ConfigError as exc:
            if given:
                raise ConfigError(f"{where} ({', '.join(rung)}): {exc}") from exc
            (notes if notes is not None else []).append(f"{where} ({remedy}) left out: {exc}")
            continue
        if healed == data and remedy.lr_factor == 1:
            (notes if notes is not None else []).append(f"{where} ({remedy}) left out: the run already has it")
            continue
        ladder.append(remedy)
        data = healed
    if given and not ladder:
        (notes if notes is not None else []).append("every rung of train.heal_ladder was left out: the run stops "
                                                    "when it fails")
    return ladder


def _checked_remedy(cfg: Config, data: dict[str, Any], remedy: Remedy) -> dict[str, Any]:
    """The config (as a dict, normalised) a remedy makes of ``data``; ConfigError if invalid."""
    healed = from_dict(apply_remedy(data, remedy))
    _check_names(healed)
    if healed.train.augment is not None and dataset_protocol(cfg.data.name) == "mixture":
        raise ConfigError("train.augment transforms images; this run's data are 2-D points")
    return healed.to_dict()


def _check_compile(cfg: Config) -> None:
    mode = cfg.train.compile
    # torch.compile's AOTAutograd has no double backward: such penalties cannot run compiled.
    second_order = sorted({s["name"] for pc in (cfg.d, cfg.g) for s in pc.penalties
                           if mode != "none" and PENALTIES.get(s["name"]).factory.second_order})
    if second_order:
        raise ConfigError(f"train.compile={mode}: {', '.join(second_order)} differentiate(s) a gradient of the "
                          "networks (a double backward), which torch.compile does not support; "
                          "set train.compile=none with these penalties")


def _check_eval_names(t: EvalOptions) -> None:
    check_metrics(t.eval_metrics, "train.eval_metrics")
    check_sample_count(t.eval_n, t.eval_metrics)
    EXTRACTORS.get(t.eval_extractor)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults <- YAML file <- ``key=value`` overrides, parsed and checked (names included)."""
    return check_config(read_config(path, overrides))


def config_from_dict(data: dict[str, Any]) -> Config:
    """A stored or planned config (nested dicts), parsed and checked."""
    return check_config(from_dict(data))


# --- data and networks -----------------------------------------------------------------------


def build_data(cfg: Config, split: str | None = None) -> InMemoryData:
    """The dataset a config names (``split`` overrides ``data.split``)."""
    d = cfg.data
    return load_dataset(d.name, d.root, split or d.split, d.resolution, d.channels, d.limit, d.toy_samples,
                        cfg.train.seed)


def build_pair(cfg: Config, info: DataInfo) -> GanPair:
    """The generator/discriminator pair for data described by ``info``."""
    m = cfg.model
    if m.conditional and info.num_classes < 2:
        raise ConfigError(f"model.conditional=true needs labelled data with at least 2 classes; dataset "
                          f"'{info.name}' has {'no labels' if info.num_classes == 0 else 'one class'}")
    condition_shape = info.condition_shape if translates(m.arch) else None
    return build_models(m.arch, info.sample_shape, m.z_dim, width=m.width, depth=m.depth, g_norm=m.g_norm,
                        d_norm=m.d_norm, spectral_norm=m.spectral_norm,
                        num_classes=info.num_classes if m.conditional else 0, g_conditioning=m.g_conditioning,
                        condition_shape=condition_shape, class_head=bool(_penalties_needing(cfg, CLASS_LOGITS)))


def _penalties_needing(cfg: Config, need: str) -> list[str]:
    """The configured penalties (either player) whose factory ``needs`` ``need``, by name."""
    return sorted({s["name"] for pc in (cfg.d, cfg.g) for s in pc.penalties
                   if need in PENALTIES.get(s["name"]).factory.needs})


def info_from_config(cfg: Config) -> DataInfo:
    """The description of a config's data without loading it, for checkpoints written before
    the description was stored (format 1): unconditional, shape from the config."""
    protocol = dataset_protocol(cfg.data.name)
    if protocol == "mixture":
        return DataInfo(cfg.data.name, "points", (2,), 0, protocol)
    d = cfg.data
    return DataInfo(d.name, "image", (d.channels, d.resolution, d.resolution), 0, protocol)


def build_evaluator(cfg: Config, **kwargs: Any) -> Evaluator:
    """An evaluator for the data a config trains on (``kwargs``: the Evaluator's options)."""
    d = cfg.data
    kwargs.setdefault("conditional", cfg.model.conditional)
    return Evaluator(d.name, d.root, d.resolution, d.channels, **kwargs)


def build_player(tag: str, net: torch.nn.Module, pc: PlayerConfig, role: str) -> Player:
    """One side of the game: its network, optimiser, penalties and clipper (from ``d.*`` or ``g.*``)."""
    penalties = [build_penalty(spec, role) for spec in pc.penalties]
    params = [p for p in net.parameters() if p.requires_grad]
    return Player(tag, net, build_optimizer(params, pc, role), penalties, build_clipper(pc.clip))


def build_autocast(amp: str, device: torch.device) -> Callable[[], ContextManager]:
    """The context the step computes its forwards in: none, bf16 or fp16 autocast."""
    if amp == "none":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


# --- a run's parts ---------------------------------------------------------------------------


@dataclass
class RunParts:
    """Everything a run trains with; :func:`build_run` makes it, the trainer keeps the loop."""

    cfg: Config
    ctx: ProcessContext
    device: torch.device
    data: InMemoryData          # on the device, in the layout the networks take
    sampler: BatchSampler       # the global batch's indices, the same on every rank
    pair: GanPair               # G and D on the device (the EMA keeps its own copy of G)
    loss: AdversarialLoss
    augment: Augment | None
    d: Player                   # D, scored through the augmentation when there is one
    g: Player
    ema: Ema | None
    periodic_eval: PeriodicEval
    autocast: Callable[[], ContextManager]
    channels_last: bool
    health: HealthMonitor
    ladder: list[Remedy]        # what a failing run tries (training/recovery.py)
    ladder_notes: list[str]     # the default ladder's remedies left out for this run, and why
    history: FakeHistory | None = None  # train.fake_history: past generated images D is shown


def build_run(cfg: Config, ctx: ProcessContext, data: InMemoryData | None = None,
              pair: GanPair | None = None) -> RunParts:
    """Make every part of a run from ``cfg``. ``data`` and ``pair`` replace what data.* and
    model.* would build (benchmarks and users' own networks)."""
    check_config(cfg)
    t = cfg.train
    _record_world_size(t, ctx)
    if t.threads:
        torch.set_num_threads(t.threads)
    seed_everything(t.seed)  # the same on every rank: random draws are sharded (shard_of), not reseeded
    device = resolve_device(t.device, ctx)
    given_data = data
    data = build_data(cfg) if data is None else data
    # One sampler for the global batch, the same on every rank; each rank takes its slice:
    # every epoch is split across ranks, reshuffled from the seed.
    _check_global_batch(cfg, ctx, len(data))
    sampler = BatchSampler(len(data), cfg.data.batch_size * ctx.world_size, t.seed, data.name)
    pair = build_pair(cfg, data.info) if pair is None else pair
    if pair.translates and not data.info.paired:
        raise DataError(f"the model pair translates input images; dataset '{data.name}' has none (paired data: "
                        "InMemoryData(conditions=...))")
    _batch_norm_across_ranks(pair, t, ctx, cfg.data.batch_size, device)
    pair.generator, pair.discriminator = pair.generator.to(device), pair.discriminator.to(device)
    data, channels_last, probe = _place_data(data.to(device), pair, t, cfg.model.z_dim, device)
    fused = t.fused_d_forward and len(probe.x) > 1 and can_fuse_real_and_fake(pair.discriminator, probe.x, probe.y)
    loss, augment, d, g = build_game(cfg, pair, data, fused, device)
    ema = _build_ema(pair, t.ema, cfg.model.z_dim, data)  # a copy of the eager G (compiling wraps the players' only)
    pairs = _evaluation_pairs(cfg) if pair.translates and not pair.two_domains and (t.eval_every or t.eval_seconds) \
        else None
    evaluation = PeriodicEval(t, _periodic_evaluator(cfg, device, None if pairs is None else len(pairs[0])),
                              ema is not None, cfg.model.z_dim, pair.num_classes, pairs,
                              _cycle_scores(cfg, device) if pair.two_domains and (t.eval_every or t.eval_seconds)
                              else None)
    # Data handed in (not built from data.*) has no test split the config could name.
    probe = Probe(data, cfg.model.z_dim, pair.num_classes, device, translates=pair.translates,
                  heldout=_heldout_data(cfg, data) if given_data is None else None,
                  class_kl=_probe_class_kl(evaluation, ctx)) if t.health_every else None
    return RunParts(cfg, ctx, device, data, sampler, pair, loss, augment, d, g, ema, evaluation,
                    build_autocast(t.amp, device), channels_last, HealthMonitor(probe, t.health_every),
                    recovery_ladder(cfg, notes := []), notes,
                    FakeHistory(t.fake_history, t.seed + HISTORY_SEED) if t.fake_history else None)


def _probe_class_kl(evaluation: PeriodicEval, ctx: ProcessContext) -> Callable[[torch.Tensor], float | None] | None:
    """The probe's class signal: only where the run evaluates images anyway, so that the
    classifier and the data's class histogram exist (the probe adds no training of its own),
    and on rank 0 alone, whose rows the status is decided on."""
    scores_images = evaluation.cycle is None and evaluation.pairs is None
    if not (evaluation.enabled and scores_images and ctx.is_main and evaluation.evaluator.protocol != "mixture"):
        return None
    return evaluation.evaluator.class_kl


HISTORY_SEED = 7_919  # the history's stream is the run's seed + this: apart from the sampler's (seeded by the seed)


def _heldout_data(cfg: Config, data: InMemoryData) -> InMemoryData | None:
    """The test split, for the probe's memorisation signal: None where the data has none of its
    own (a loader that gives the training set again), and for 2-D mixtures (a new draw of the
    same mixture is not held-out data)."""
    if not data.is_image or not has_test_split(cfg.data.name, cfg.data.root):
        return None
    try:
        heldout = build_data(cfg, split="test")
    except (OSError, DataError, ConfigError):
        return None
    same = heldout.samples.shape == data.samples.shape and torch.equal(heldout.samples.cpu(), data.samples.cpu())
    return None if same or len(heldout) < 2 else heldout


def build_game(cfg: Config, pair: GanPair, data: InMemoryData, fused_forward: bool,
               device: torch.device) -> tuple[AdversarialLoss, Augment | None, Player, Player]:
    """The loss, the augmentation and the two players around the networks: what the keys a
    remedy may change (loss, d.*, g.*, train.augment) make, and all that healing rebuilds."""
    t = cfg.train
    augment = build_augment(t.augment)  # DiffAugment / ADA: D is scored through it (both updates, penalties too)
    if augment is not None and not data.is_image:
        raise ConfigError(f"train.augment transforms images; '{data.name}' holds {data.info.kind}: leave it unset")
    D = pair.discriminator
    if augment is not None:  # a pix2pix pair's input moves with its output; CycleGAN's two domains jitter apart
        paired = pair.translates and not pair.two_domains  # a user's own translation pair too
        D = AugmentedDiscriminator(D, augment, paired=paired, slots=2 if pair.two_domains else 1)
    d = build_player("D", D, cfg.d, "d")
    g = build_player("G", pair.generator, cfg.g, "g")
    d.fused_forward = fused_forward
    _warn_batch_coupling(d, pair.discriminator)
    if t.compile != "none":
        compile_players(d, g, t.compile)
    if t.amp == "fp16":  # a gradient scaler per player: their losses and gradients differ by orders of magnitude
        d.scaler, g.scaler = torch.amp.GradScaler(device.type), torch.amp.GradScaler(device.type)
    return build_loss(cfg.loss), augment, d, g


def rebuild_game(parts: RunParts, cfg: Config) -> RunParts:
    """The parts with the game rebuilt from ``cfg`` (a remedy's config): the same networks,
    data and EMA; new optimisers, penalties, clippers, loss and augmentation."""
    loss, augment, d, g = build_game(cfg, parts.pair, parts.data, parts.d.fused_forward, parts.device)
    return dataclasses.replace(parts, cfg=cfg, loss=loss, augment=augment, d=d, g=g)


def _record_world_size(t: TrainConfig, ctx: ProcessContext) -> None:
    if t.world_size is None:
        t.world_size = ctx.world_size  # recorded in config.yaml: the global batch is batch_size x this
    elif t.world_size != ctx.world_size:
        raise ConfigError(f"train.world_size={t.world_size} but this run was launched with {ctx.world_size} "
                          "process(es); leave train.world_size out (it is recorded from the launch)")


def _check_global_batch(cfg: Config, ctx: ProcessContext, n: int) -> None:
    b, world = cfg.data.batch_size, ctx.world_size
    if world > 1 and b * world > n:
        raise DataError(f"the global batch, data.batch_size={b} x {world} processes = {b * world}, is larger than "
                        f"{cfg.data.name} ({n} samples); lower data.batch_size or use more data")


def _place_data(data: InMemoryData, pair: GanPair, t: TrainConfig, z_dim: int,
                device: torch.device) -> tuple[InMemoryData, bool, Any]:
    """The data in the layout the networks run fastest in, and a probe batch of four samples.

    Channels-last (NHWC): convolutions, and above all nearest upsampling, run several times
    faster in it on CPU and GPU; the data is converted once, here. Whether the networks allow
    it (and the fused D forward) is decided on the probe (fast_paths.py)."""
    G, D = pair.generator, pair.discriminator
    probe = data.batch(torch.arange(min(4, len(data)), device=device), labels=pair.conditional,
                       conditions=pair.translates)
    probe_z = torch.randn(len(probe.x), z_dim, generator=torch.Generator().manual_seed(0)).to(device)
    channels_last = (t.channels_last and data.is_image and is_convolutional(D)
                     and to_channels_last(G, D, probe_z, probe.x, probe.y))
    return data.to(device, channels_last=channels_last), channels_last, probe


EMA_CONDITIONS = 512  # a translation EMA's standing statistics: input images drawn from this many


def _build_ema(pair: GanPair, decay: float, z_dim: int, data: InMemoryData) -> Ema | None:
    if decay == 0:
        return None
    conditions = None
    if pair.translates:  # fixed, from their own seed: the training RNG does not move
        index = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:EMA_CONDITIONS]
        conditions = data.condition_images(index)
    ema = Ema(pair.generator, decay, z_dim, pair.num_classes, conditions)
    # The EMA is not trained: its standing statistics need no other process (and a
    # SyncBatchNorm there would make every sample grid a collective).
    revert_sync_batchnorm(ema.model)
    return ema


def _periodic_evaluator(cfg: Config, device: torch.device, n: int | None = None) -> Evaluator:
    """``n``: samples per evaluation when not train.eval_n (a translation run: its test pairs)."""
    t = cfg.train
    options = {"weights": t.eval_weights, "device": str(device)} if t.eval_extractor == "inception" else {}
    return build_evaluator(cfg, metrics=t.eval_metrics, n=n or t.eval_n, extractor=t.eval_extractor,
                           extractor_options=options, seed=t.seed)


def _cycle_scores(cfg: Config, device: torch.device) -> CycleScores:
    """A CycleGAN run's periodic scores, on a seeded subset of each domain's distinct test images
    (train.eval_n of them, else TRANSLATION_EVAL_PAIRS)."""
    t = cfg.train
    options = {"weights": t.eval_weights, "device": str(device)} if t.eval_extractor == "inception" else {}
    return CycleScores(cfg, lambda split: build_data(cfg, split=split), t.eval_n or TRANSLATION_EVAL_PAIRS, t.seed,
                       t.eval_extractor, extractor_options=options)


TRANSLATION_EVAL_PAIRS = 2000  # a translation run's periodic evaluation: test pairs scored, unless train.eval_n


def _evaluation_pairs(cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of the first test pairs a translation run is scored on, in [-1, 1]."""
    test = build_data(cfg, split="test")
    index = torch.arange(min(cfg.train.eval_n or TRANSLATION_EVAL_PAIRS, len(test)))
    return test.condition_images(index), test.batch(index).x


def _batch_norm_across_ranks(pair: GanPair, t: TrainConfig, ctx: ProcessContext, batch_size: int,
                             device: torch.device) -> None:
    """Distributed: BatchNorm normalises over each rank's share of the batch, unless
    train.sync_batchnorm=true makes it use the global batch (SyncBatchNorm, CUDA only)."""
    if not ctx.distributed or not any(has_batch_coupling(net) for net in (pair.generator, pair.discriminator)):
        return
    if t.sync_batchnorm:
        if device.type != "cuda":
            raise ConfigError("train.sync_batchnorm=true needs CUDA devices (PyTorch's SyncBatchNorm); on CPUs "
                              "use BatchNorm per rank (the default) or model.g_norm/d_norm=layer")
        pair.generator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(pair.generator)
        pair.discriminator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(pair.discriminator)
    elif ctx.is_main:
        warnings.warn(f"BatchNorm statistics are per rank ({batch_size} samples each, not the global "
                      f"{batch_size * ctx.world_size}); train.sync_batchnorm=true (CUDA) synchronises them",
                      stacklevel=4)


def _warn_batch_coupling(d: Player, D: torch.nn.Module) -> None:
    gp = [p.name for p in d.penalties if p.name in INPUT_GRADIENT_PENALTIES]
    if gp and has_batch_coupling(D):
        warnings.warn(
            f"the discriminator uses BatchNorm while {', '.join(gp)} penalises per-sample input "
            "gradients: each sample's gradient then depends on the rest of the batch, which the "
            "penalty assumes it does not (Gulrajani et al. 2017). Prefer model.d_norm=layer, "
            "instance or none.", stacklevel=4)


# --- process-wide settings and the run directory ----------------------------------------------


def resolve_device(name: str, context: ProcessContext | None = None, flag: str = "train.device=") -> torch.device:
    """``train.device`` (or a command's ``--device``, ``flag="--device "``) for this process: in a
    distributed run on GPUs, its local rank's GPU. A one-line ConfigError for a name torch does
    not know or a CUDA device this machine lacks."""
    try:
        device = (context or ProcessContext()).device(name)
    except RuntimeError as exc:
        raise ConfigError(f"{flag}{name}: not a device; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{flag}{name} but CUDA is not available here; use {flag}cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def new_run_dir(out_dir: str | Path, name: str = "") -> Path:
    """Next numbered run directory: 00000-name, 00001-name, ..."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in out.iterdir() if (m := re.match(r"^(\d{5})", p.name))]
    suffix = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    run = out / (f"{max(numbers, default=-1) + 1:05d}" + (f"-{suffix}" if suffix else ""))
    run.mkdir()
    return run
