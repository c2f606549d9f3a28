"""Rebuild a trained generator from a run directory (for `sample`, `complete`, evaluation, reports)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import Config
from ..core.sampler import NetworkSampler
from ..data import DataInfo
from ..errors import CheckpointError, ConfigError
from .build import build_pair, config_from_dict, info_from_config
from .checkpoint import latest_checkpoint, load_checkpoint, load_matching


@dataclass
class LoadedGenerator(NetworkSampler):
    """A trained run's generator (EMA or raw weights), in eval mode, with where it came from."""

    config: Config | None = None
    step: int = 0
    checkpoint: Path | None = None
    ema: bool = False             # True if these are the EMA weights
    info: DataInfo | None = None  # the data it was trained on (shape, classes, protocol)
    translates: bool = False      # a translation generator (pix2pix): it needs input images, not noise alone
    two_domains: bool = False     # a CycleGAN generator: its inputs and outputs are joint samples (models/cycle.py)

    def sample(self, n: int, seed: int = 0, batch_size: int = 256, labels: torch.Tensor | None = None,
               part: tuple[int, int] = (0, 1)) -> torch.Tensor:
        """As :meth:`NetworkSampler.sample`; a translation run has no samples of its own."""
        if self.translates:
            raise ConfigError("this run translates input images: it has no samples of its own; use "
                              "`steadygan translate RUN --test N -o pairs.png` (or --image/--folder)")
        return super().sample(n, seed, batch_size, labels, part)


def load_generator(run_dir: str | Path, checkpoint: str | Path | None = None, use_ema: bool = True,
                   device: str | torch.device = "cpu") -> LoadedGenerator:
    """The generator of ``run_dir``'s newest checkpoint (or ``checkpoint``); EMA weights if kept."""
    return load_networks(run_dir, checkpoint, use_ema, device)[0]


def load_networks(run_dir: str | Path, checkpoint: str | Path | None = None, use_ema: bool = True,
                  device: str | torch.device = "cpu") -> tuple[LoadedGenerator, nn.Module]:
    """The generator (as :func:`load_generator`) and the discriminator, in eval mode."""
    run_dir = Path(run_dir)
    ckpt = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if ckpt is None:
        raise ConfigError(f"{run_dir}: no checkpoint found (expected {run_dir}/checkpoints/ckpt-*.pt)")
    payload = load_checkpoint(ckpt)
    cfg = config_from_dict(payload["config"])
    try:
        info = DataInfo.from_dict(payload["data"]) if payload.get("data") else info_from_config(cfg)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{ckpt}: its data description is damaged ({exc!r})") from exc
    pair = build_pair(cfg, info)
    ema = use_ema and payload.get("ema") is not None
    load_matching(pair.generator, payload["ema"] if ema else payload["generator"], f"the generator in {ckpt}")
    if payload.get("discriminator") is not None:
        load_matching(pair.discriminator, payload["discriminator"], f"the discriminator in {ckpt}")
    loaded = LoadedGenerator(pair.generator.to(device).eval(), cfg.model.z_dim, pair.num_classes, cfg.data.name,
                             cfg, int(payload["step"]), ckpt, ema, info, pair.translates, pair.two_domains)
    return loaded, pair.discriminator.to(device).eval()
