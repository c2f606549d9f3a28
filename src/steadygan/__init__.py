"""steadygan: train GANs that do not fall apart, and measure which stabiliser works."""

from .config import Config
from .core.augment import AUGMENTS, Augment, AugmentedDiscriminator
from .core.clipping import CLIPPERS, Clipper, ClipStats, agc_, build_clipper, clip_norm_, clip_value_, weight_clip_
from .core.losses import LOSSES, AdversarialLoss, build_loss
from .core.penalties import (
    PENALTIES,
    Penalty,
    PenaltyInputs,
    build_penalty,
    consensus_penalty,
    dragan_penalty,
    lecam_penalty,
    nk_penalty,
    param_grad_penalty,
    r1_penalty,
    r2_penalty,
    wgan_gp_penalty,
    zero_gp_penalty,
)
from .core.step import Player, d_step, g_step
from .data import DATASETS, InMemoryData, load_dataset
from .errors import ConfigError
from .models import MODELS, GanPair, build_models
from .training.build import load_config
from .training.trainer import Trainer, TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "AUGMENTS", "AdversarialLoss", "Augment", "AugmentedDiscriminator", "CLIPPERS", "GanPair", "ClipStats", "Clipper",
    "Config", "ConfigError", "DATASETS",
    "InMemoryData", "LOSSES", "MODELS", "PENALTIES", "Penalty", "PenaltyInputs", "Player",
    "TrainResult", "Trainer", "build_clipper", "build_loss", "build_models", "build_penalty",
    "d_step", "g_step", "load_config", "load_dataset", "train",
    # the stabilisers as functions, for any training loop
    "r1_penalty", "r2_penalty", "wgan_gp_penalty", "zero_gp_penalty", "dragan_penalty", "param_grad_penalty",
    "consensus_penalty", "nk_penalty", "lecam_penalty", "clip_value_", "clip_norm_", "agc_", "weight_clip_",
]
