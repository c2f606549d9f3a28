"""The one place that builds a run's data and networks from its config.

Training, resume, sampling and evaluation all come through here, so a generator rebuilt
from a checkpoint has exactly the shape it was trained with: the data's description
(sample shape, classes) is stored in every checkpoint and read back, not re-derived.
"""

from __future__ import annotations

from ..config import Config
from ..data import DataInfo, InMemoryData, dataset_protocol, load_dataset
from ..models import GanPair, build_models
from ..errors import ConfigError


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
    return build_models(m.arch, info.sample_shape, m.z_dim, width=m.width, depth=m.depth, g_norm=m.g_norm,
                        d_norm=m.d_norm, spectral_norm=m.spectral_norm,
                        num_classes=info.num_classes if m.conditional else 0)


def info_from_config(cfg: Config) -> DataInfo:
    """The description of a config's data without loading it, for checkpoints written before
    the description was stored (format 1): unconditional, shape from the config."""
    protocol = dataset_protocol(cfg.data.name)
    if protocol == "mixture":
        return DataInfo(cfg.data.name, "points", (2,), 0, protocol)
    d = cfg.data
    return DataInfo(d.name, "image", (d.channels, d.resolution, d.resolution), 0, protocol)
