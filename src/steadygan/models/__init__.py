"""Generator/discriminator pairs by architecture name."""

from __future__ import annotations

from ..core.pair import GanPair, bind, call, domain_slots, has_batch_coupling, swap_domains
from ..errors import ConfigError
from ..registry import Registry
from .conditional import (
    CLASS_EMBED_DIM,
    CLASS_HEAD,
    G_CONDITIONINGS,
    CbnGenerator,
    ClassBatchNorm,
    ConditionalGenerator,
    ProjectionDiscriminator,
)
from .cycle import (
    DIRECTIONS,
    CycleDiscriminator,
    CycleGenerator,
    cycle_pair_channels,
    translate_one_way,
)
from .dcgan import DcganDiscriminator, DcganGenerator
from .imported import build_imported, check_imported_options, is_import_path
from .layers import NORMS, apply_spectral_norm, is_convolutional, revert_sync_batchnorm
from .mlp import MlpDiscriminator, MlpGenerator
from .pacgan_mlp import PacganMlpDiscriminator, PacganMlpGenerator
from .seed_gc import SeedGcDiscriminator, SeedGcGenerator
from .translation import PatchDiscriminator, UNetGenerator

MODELS: Registry[GanPair] = Registry("model")


def _image_shape(arch: str, sample_shape: tuple[int, ...]) -> tuple[int, int]:
    if len(sample_shape) != 3 or sample_shape[1] != sample_shape[2]:
        raise ConfigError(f"model '{arch}' needs square images (C, H, W); the data has shape {sample_shape}; "
                          "for 2-D points use model.arch=mlp")
    return sample_shape[0], sample_shape[1]


# Factories take only the options they use: model.width / model.depth given to an
# architecture that has no such option is an error, not silently ignored.

@MODELS.register("dcgan", summary="DCGAN conv pair; 28/32/64 px, 1 or 3 channels (default D norm: none)",
                 paper="Radford et al. 2016")
def dcgan(sample_shape: tuple[int, ...], z_dim: int, g_norm: str | None = None, d_norm: str | None = None,
          width: int = 64) -> GanPair:
    channels, res = _image_shape("dcgan", sample_shape)
    return GanPair(DcganGenerator(z_dim, channels, res, width, g_norm or "batch"),
                   DcganDiscriminator(channels, res, width, d_norm or "none"))


@MODELS.register("seed-gc", summary="the GC-GAN document's nets (dense+deconv G, 3-conv BN D); 28/32/64 px; "
                                     "width 64 is the document's sizes, 32 halves every layer",
                 paper="GC-GAN source document, sec. 4")
def seed_gc(sample_shape: tuple[int, ...], z_dim: int, g_norm: str | None = None,
            d_norm: str | None = None, width: int = 64) -> GanPair:
    channels, res = _image_shape("seed-gc", sample_shape)
    return GanPair(SeedGcGenerator(z_dim, channels, res, g_norm or "batch", width),
                   SeedGcDiscriminator(channels, res, d_norm or "batch", width))


@MODELS.register("mlp", summary="fully connected pair (width x depth) for 2-D toy data")
def mlp(sample_shape: tuple[int, ...], z_dim: int, g_norm: str | None = None, d_norm: str | None = None,
        width: int = 128, depth: int = 3) -> GanPair:
    if len(sample_shape) != 1:
        raise ConfigError(f"model 'mlp' is for vector data; the data has shape {sample_shape}; use dcgan or seed-gc")
    return GanPair(MlpGenerator(z_dim, sample_shape[0], width, depth, g_norm or "none"),
                   MlpDiscriminator(sample_shape[0], width, depth, d_norm or "none"))


@MODELS.register("pacgan-mlp", summary="PacGAN's 2-D pair: G 4x400 BatchNorm+ReLU, D 3 maxout layers of 200 "
                                        "(5 pieces); N(0, 0.02) init", paper="Lin et al. 2018 (PacGAN)")
def pacgan_mlp(sample_shape: tuple[int, ...], z_dim: int, g_norm: str | None = None,
               d_norm: str | None = None) -> GanPair:
    if len(sample_shape) != 1:
        raise ConfigError(f"model 'pacgan-mlp' is for vector data; the data has shape {sample_shape}")
    return GanPair(PacganMlpGenerator(z_dim, sample_shape[0], norm=g_norm or "batch"),
                   PacganMlpDiscriminator(sample_shape[0], norm=d_norm or "none"))


@MODELS.register("pix2pix", summary="image-to-image translation: U-Net G(z, a), PatchGAN D(b, a) scoring patches; "
                                     "28 px or 2^k px from 32 (default G norm: batch, D norm: instance)",
                 paper="Isola et al. 2017 (pix2pix)", info={"translates": True})
def pix2pix(sample_shape: tuple[int, ...], z_dim: int, g_norm: str | None = None, d_norm: str | None = None,
            width: int = 64, depth: int | None = None, condition_shape: tuple[int, ...] | None = None) -> GanPair:
    """``depth``: the PatchGAN's strided layers (receptive field 16, 34 or 70 px; default: the
    largest below the image). ``condition_shape``: the input images' (C, H, W), default the
    output's; both must have the same size."""
    channels, res = _image_shape("pix2pix", sample_shape)
    condition_shape = tuple(condition_shape or sample_shape)
    if len(condition_shape) != 3 or condition_shape[1:] != (res, res):
        raise ConfigError(f"pix2pix translates images of one size: inputs {condition_shape}, outputs {sample_shape}")
    return GanPair(UNetGenerator(z_dim, condition_shape[0], channels, res, width, g_norm or "batch"),
                   PatchDiscriminator(condition_shape[0], channels, res, width, depth, d_norm or "instance"),
                   condition_shape=condition_shape)


@MODELS.register("cyclegan", summary="unpaired translation: two U-Nets G_AB, G_BA and two PatchGANs D_A, D_B on joint "
                                      "samples (a, b); 28 px or 2^k px from 32 (default norms: instance)",
                 paper="Zhu et al. 2017 (CycleGAN)", info={"translates": True, "cycle": True})
def cyclegan(sample_shape: tuple[int, ...], z_dim: int, g_norm: str | None = None, d_norm: str | None = None,
             width: int = 64, depth: int | None = None, condition_shape: tuple[int, ...] | None = None) -> GanPair:
    """``sample_shape``: the joint samples' (2C, H, H), the condition's too (models/cycle.py);
    ``depth``: each PatchGAN's strided layers (default: the largest below the image)."""
    channels, res = cycle_pair_channels(tuple(sample_shape))
    if condition_shape is not None and tuple(condition_shape) != tuple(sample_shape):
        raise ConfigError(f"cyclegan translates joint samples into joint samples: inputs {tuple(condition_shape)}, "
                          f"outputs {tuple(sample_shape)}")
    return GanPair(CycleGenerator(z_dim, channels, res, width, g_norm or "instance"),
                   CycleDiscriminator(channels, res, width, depth, d_norm or "instance"),
                   condition_shape=tuple(sample_shape), two_domains=True)


def architecture_options(width: int | None = None, depth: int | None = None) -> dict[str, int]:
    """The size options that were set (None = the architecture's default)."""
    return {k: v for k, v in (("width", width), ("depth", depth)) if v is not None}


def check_model_options(arch: str, width: int | None = None, depth: int | None = None) -> None:
    """ConfigError for an unknown architecture, an option ``arch`` does not take, or a size below 1."""
    options = architecture_options(width, depth)
    if is_import_path(arch):
        check_imported_options(arch, options)
        return
    try:
        entry = MODELS.get(arch)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; or your own networks: model.arch=package.module:factory") from exc
    valid = [k for k in entry.parameters() if k in ("width", "depth")]
    for key, value in options.items():
        if key not in valid:
            raise ConfigError(f"model.{key} does not apply to model '{arch}' (its options: "
                              f"{', '.join(f'model.{v}' for v in valid) or 'none'}); remove it "
                              f"(--set model.{key}=null)")
        if value < 1:
            raise ConfigError(f"model.{key} must be >= 1 (got {value})")


def build_models(arch: str, sample_shape: tuple[int, ...], z_dim: int = 100, *, width: int | None = None,
                 depth: int | None = None, g_norm: str | None = None, d_norm: str | None = None,
                 spectral_norm: bool = False, num_classes: int = 0, g_conditioning: str = "embed",
                 condition_shape: tuple[int, ...] | None = None, class_head: bool = False) -> GanPair:
    """Build a pair for data of ``sample_shape``; ``num_classes > 0`` makes it class-conditional,
    its generator through ``g_conditioning`` (``embed``: joined to z; ``cbn``: conditional BatchNorm)
    and its discriminator with a projection head (and, ``class_head``, a class head too).
    ``condition_shape``: a translation pair's input images, when they differ from its outputs."""
    if class_head and not num_classes:
        raise ConfigError("a class head classifies the samples of a class-conditional model: set "
                          "model.conditional=true on labelled data")
    if g_conditioning not in G_CONDITIONINGS:
        raise ConfigError(f"model.g_conditioning must be one of {', '.join(G_CONDITIONINGS)} (got {g_conditioning!r})")
    for role, norm in (("g_norm", g_norm), ("d_norm", d_norm)):
        if norm is not None and norm not in NORMS:
            raise ConfigError(f"model.{role} '{norm}' is not one of: {', '.join(NORMS)}")
    if z_dim < 1:
        raise ConfigError(f"model.z_dim must be >= 1 (got {z_dim})")
    check_model_options(arch, width, depth)
    g_inputs = z_dim + (CLASS_EMBED_DIM if num_classes and g_conditioning == "embed" else 0)
    if is_import_path(arch):  # the user's own networks (models/imported.py)
        pair = build_imported(arch, tuple(sample_shape), g_inputs, width=width, depth=depth, g_norm=g_norm,
                              d_norm=d_norm)
    else:
        extra = {} if condition_shape is None else {"condition_shape": tuple(condition_shape)}
        if extra and not MODELS.get(arch).info.get("translates"):
            raise ConfigError(f"model '{arch}' does not translate images: it takes no input image shape")
        pair = MODELS.build(arch, sample_shape=tuple(sample_shape), z_dim=g_inputs, g_norm=g_norm,
                            d_norm=d_norm, **architecture_options(width, depth), **extra)
    if num_classes and pair.translates:
        raise ConfigError(f"model '{arch}' is conditioned on an input image; it cannot also be class-conditional "
                          "(model.conditional=false)")
    if num_classes:
        missing = [a for a in ("embed", "head") if not hasattr(pair.discriminator, a)]
        if missing:
            raise ConfigError(f"model.conditional=true: the discriminator of model '{arch}' has no "
                              f"{' or '.join(missing)}; a projection discriminator needs embed(x) -> (N, F) features "
                              "and a head Linear(F, 1)")
        wrap = ConditionalGenerator if g_conditioning == "embed" else CbnGenerator
        pair = GanPair(wrap(pair.generator, num_classes),
                       ProjectionDiscriminator(pair.discriminator, num_classes, class_head), num_classes)
    if spectral_norm:  # every D layer, the projection's class embedding included (Miyato & Koyama 2018)
        apply_spectral_norm(pair.discriminator)
    return pair


__all__ = ["GanPair", "MODELS", "build_models", "check_model_options", "has_batch_coupling", "is_convolutional",
           "CycleDiscriminator", "CycleGenerator", "DIRECTIONS", "domain_slots", "swap_domains", "translate_one_way",
           "revert_sync_batchnorm", "NORMS", "call", "bind", "CLASS_HEAD",
           "CbnGenerator", "ClassBatchNorm", "ConditionalGenerator", "ProjectionDiscriminator", "is_import_path"]
