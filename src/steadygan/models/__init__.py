"""Generator/discriminator pairs by architecture name."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..registry import ConfigError, Registry
from .dcgan import DcganDiscriminator, DcganGenerator
from .layers import NORMS, apply_spectral_norm, has_batch_coupling
from .mlp import MlpDiscriminator, MlpGenerator
from .seed_gc import SeedGcDiscriminator, SeedGcGenerator


@dataclass
class GanPair:
    generator: nn.Module
    discriminator: nn.Module


MODELS: Registry[GanPair] = Registry("model")


def _image_shape(arch: str, sample_shape: tuple[int, ...]) -> tuple[int, int]:
    if len(sample_shape) != 3 or sample_shape[1] != sample_shape[2]:
        raise ConfigError(f"model '{arch}' needs square images (C, H, W); the data has shape {sample_shape}; "
                          "for 2-D points use model.arch=mlp")
    return sample_shape[0], sample_shape[1]


@MODELS.register("dcgan", summary="DCGAN conv pair; 28/32/64 px, 1 or 3 channels (default D norm: none)",
                 paper="Radford et al. 2016")
def dcgan(sample_shape: tuple[int, ...], z_dim: int, width: int = 64, depth: int = 3,
          g_norm: str | None = None, d_norm: str | None = None) -> GanPair:
    channels, res = _image_shape("dcgan", sample_shape)
    return GanPair(DcganGenerator(z_dim, channels, res, width, g_norm or "batch"),
                   DcganDiscriminator(channels, res, width, d_norm or "none"))


@MODELS.register("seed-gc", summary="the GC-GAN document's nets (dense+deconv G, 3-conv BN D); 28/32/64 px",
                 paper="GC-GAN source document, sec. 4")
def seed_gc(sample_shape: tuple[int, ...], z_dim: int, width: int = 64, depth: int = 3,
            g_norm: str | None = None, d_norm: str | None = None) -> GanPair:
    channels, res = _image_shape("seed-gc", sample_shape)
    return GanPair(SeedGcGenerator(z_dim, channels, res, g_norm or "batch"),
                   SeedGcDiscriminator(channels, res, d_norm or "batch"))


@MODELS.register("mlp", summary="fully connected pair (width x depth) for 2-D toy data")
def mlp(sample_shape: tuple[int, ...], z_dim: int, width: int = 128, depth: int = 3,
        g_norm: str | None = None, d_norm: str | None = None) -> GanPair:
    if len(sample_shape) != 1:
        raise ConfigError(f"model 'mlp' is for vector data; the data has shape {sample_shape}; use dcgan or seed-gc")
    return GanPair(MlpGenerator(z_dim, sample_shape[0], width, depth, g_norm or "none"),
                   MlpDiscriminator(sample_shape[0], width, depth, d_norm or "none"))


def build_models(arch: str, sample_shape: tuple[int, ...], z_dim: int, width: int, depth: int,
                 g_norm: str | None, d_norm: str | None, spectral_norm: bool) -> GanPair:
    for role, norm in (("g_norm", g_norm), ("d_norm", d_norm)):
        if norm is not None and norm not in NORMS:
            raise ConfigError(f"model.{role} '{norm}' is not one of: {', '.join(NORMS)}")
    if z_dim < 1 or width < 1 or depth < 1:
        raise ConfigError("model.z_dim, model.width and model.depth must be >= 1")
    pair = MODELS.build(arch, sample_shape=tuple(sample_shape), z_dim=z_dim, width=width, depth=depth,
                        g_norm=g_norm, d_norm=d_norm)
    if spectral_norm:
        apply_spectral_norm(pair.discriminator)
    return pair


__all__ = ["GanPair", "MODELS", "build_models", "has_batch_coupling", "NORMS"]
