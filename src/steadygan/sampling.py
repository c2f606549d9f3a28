"""Rebuild a trained generator from a run directory (for `sample`, evaluation, reports)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .checkpoint import latest_checkpoint, load_checkpoint
from .config import Config, from_dict
from .data.toy import TOY_MIXTURES
from .models import build_models
from .registry import ConfigError


@dataclass
class LoadedGenerator:
    generator: nn.Module      # in eval mode, on the requested device
    config: Config
    step: int
    checkpoint: Path
    ema: bool                 # True if these are the EMA weights

    @property
    def is_toy(self) -> bool:
        return self.config.data.name in TOY_MIXTURES

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, batch_size: int = 256) -> torch.Tensor:
        """n samples (images in [-1, 1], or 2-D points) from noise seeded by ``seed``."""
        z = torch.randn(n, self.config.model.z_dim, generator=torch.Generator().manual_seed(seed))
        device = next(self.generator.parameters()).device
        return torch.cat([self.generator(chunk.to(device)) for chunk in z.split(batch_size)])


def sample_shape(cfg: Config) -> tuple[int, ...]:
    if cfg.data.name in TOY_MIXTURES:
        return (2,)
    return (cfg.data.channels, cfg.data.resolution, cfg.data.resolution)


def load_generator(run_dir: str | Path, checkpoint: str | Path | None = None, use_ema: bool = True,
                   device: str | torch.device = "cpu") -> LoadedGenerator:
    """The generator of ``run_dir``'s newest checkpoint (or ``checkpoint``); EMA weights if kept."""
    run_dir = Path(run_dir)
    ckpt = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if ckpt is None:
        raise ConfigError(f"{run_dir}: no checkpoint found (expected {run_dir}/checkpoints/ckpt-*.pt)")
    payload = load_checkpoint(ckpt)
    cfg = from_dict(payload["config"])
    m = cfg.model
    G = build_models(m.arch, sample_shape(cfg), m.z_dim, m.width, m.depth, m.g_norm, m.d_norm,
                     m.spectral_norm).generator
    ema = use_ema and payload["ema"] is not None
    G.load_state_dict(payload["ema"] if ema else payload["generator"])
    return LoadedGenerator(G.to(device).eval(), cfg, int(payload["step"]), ckpt, ema)
