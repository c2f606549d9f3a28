"""Rebuild a trained generator from a run directory (for `sample`, evaluation, reports)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .build import build_pair, info_from_config
from ..errors import CheckpointError
from .checkpoint import latest_checkpoint, load_checkpoint, load_matching
from ..config import Config, from_dict
from ..core.collectives import chunk_bounds
from ..data import DataInfo
from ..core.pair import call
from ..errors import ConfigError


@dataclass
class LoadedGenerator:
    generator: nn.Module      # in eval mode, on the requested device
    config: Config
    step: int
    checkpoint: Path
    ema: bool                 # True if these are the EMA weights
    info: DataInfo | None = None  # the data it was trained on (shape, classes, protocol); default: from config
    conditional: bool = False

    def __post_init__(self) -> None:
        if self.info is None:
            self.info = info_from_config(self.config)

    @property
    def num_classes(self) -> int:
        return self.info.num_classes if self.conditional else 0

    def labels_for(self, n: int) -> torch.Tensor | None:
        """The classes ``sample`` draws when none are given: 0, 1, ..., K-1, 0, 1, ... (balanced
        and deterministic); None for an unconditional generator."""
        return torch.arange(n) % self.num_classes if self.conditional else None

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, batch_size: int = 256, labels: torch.Tensor | None = None,
               part: tuple[int, int] = (0, 1)) -> torch.Tensor:
        """n samples (images in [-1, 1], or 2-D points) from noise seeded by ``seed``;
        a conditional generator draws class ``labels[i]`` for sample i (default ``labels_for(n)``).
        ``part=(k, parts)``: only the k-th of ``parts`` contiguous chunks of those n samples
        (each process of a distributed evaluation generates one)."""
        if labels is not None and not self.conditional:
            raise ConfigError("this run's generator is unconditional: it takes no class")
        labels = self.labels_for(n) if labels is None else torch.as_tensor(labels).long()
        if labels is not None:
            if labels.shape != (n,) or labels.min() < 0 or labels.max() >= self.num_classes:
                raise ConfigError(f"classes must be {n} integers in 0..{self.num_classes - 1}")
        z = torch.randn(n, self.config.model.z_dim, generator=torch.Generator().manual_seed(seed))
        start, stop = chunk_bounds(n, *part)
        z = z[start:stop]
        labels = None if labels is None else labels[start:stop]
        device = next(self.generator.parameters()).device
        out = []
        for i, chunk in enumerate(z.split(batch_size)):
            y = None if labels is None else labels[i * batch_size:i * batch_size + len(chunk)].to(device)
            out.append(call(self.generator, chunk.to(device), y))
        return torch.cat(out)


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
    cfg = from_dict(payload["config"])
    try:
        info = DataInfo.from_dict(payload["data"]) if payload.get("data") else info_from_config(cfg)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{ckpt}: its data description is damaged ({exc!r})") from exc
    pair = build_pair(cfg, info)
    ema = use_ema and payload.get("ema") is not None
    load_matching(pair.generator, payload["ema"] if ema else payload["generator"], f"the generator in {ckpt}")
    if payload.get("discriminator") is not None:
        load_matching(pair.discriminator, payload["discriminator"], f"the discriminator in {ckpt}")
    loaded = LoadedGenerator(pair.generator.to(device).eval(), cfg, int(payload["step"]), ckpt, ema, info,
                             cfg.model.conditional)
    return loaded, pair.discriminator.to(device).eval()
