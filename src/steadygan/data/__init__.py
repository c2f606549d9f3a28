"""Datasets by name: each loader returns an :class:`InMemoryData` ready for the sampler."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..errors import ConfigError, DataError
from ..registry import Registry
from .base import BatchSampler, DataInfo, InMemoryData, fit_images, to_float_images, to_uint8_images
from .cifar import load_cifar10
from .edges import edge_maps
from .folder import load_image_folder
from .idx import load_idx_dataset, read_idx, write_idx
from .paired import load_pairs
from .prepared import MANIFEST, PREPARED_TEST, check_test_split, load_prepared, prepare_dataset
from .stacked import make_stacked_mnist
from .toy import TOY_MIXTURES, grid25_modes, ring8_modes, sample_mixture
from .unpaired import joint_samples, load_unpaired

__all__ = ["BatchSampler", "DataError", "DataInfo", "InMemoryData", "DATASETS", "load_dataset", "fit_images",
           "has_test_split",
           "dataset_protocol", "is_mixture", "mixture",
           "to_float_images", "to_uint8_images", "read_idx", "write_idx", "sample_mixture",
           "ring8_modes", "grid25_modes", "TOY_MIXTURES", "load_prepared", "prepare_dataset"]

DATASETS: Registry[Callable[..., InMemoryData]] = Registry("dataset")

DEFAULT_ROOTS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist",
                 "edges2fashion": "/usr/share/datasets/fashion-mnist",
                 "sneakers2boots": "/usr/share/datasets/fashion-mnist",
                 "stacked": "/usr/share/datasets/fashion-mnist"}  # any MNIST-format folder


def _root(name: str, root: str | None) -> Path:
    if root:
        return Path(root).expanduser()
    if name in DEFAULT_ROOTS:
        return Path(DEFAULT_ROOTS[name])
    raise DataError(f"dataset '{name}' has no default location; set data.root (or --data-dir) to its folder")


def _idx_loader(name: str, transpose: bool = False):
    def load(root: str | None, split: str, resolution: int, channels: int) -> InMemoryData:
        images, labels = load_idx_dataset(_root(name, root), split, transpose=transpose)
        return InMemoryData(fit_images(images, resolution, channels), labels, name)
    return load


for _name, _summary, _transpose in [
    ("fashion-mnist", "Fashion-MNIST IDX files (default folder: Debian's dataset-fashion-mnist)", False),
    ("mnist", "MNIST IDX files from data.root", False),
    ("kmnist", "Kuzushiji-MNIST IDX files from data.root", False),
    ("emnist", "EMNIST IDX files from data.root (stored transposed; fixed on load)", True),
    ("idx", "any MNIST-format IDX folder from data.root", False),
]:
    DATASETS.register(_name, summary=_summary)(_idx_loader(_name, _transpose))


@DATASETS.register("edges2fashion", summary="paired translation: Fashion-MNIST garments (targets) from their edge "
                                           "maps (inputs, Sobel; black lines on white), like pix2pix's edges2shoes",
                   paper="Isola et al. 2017 (pix2pix), edges2shoes", info={"paired": True})
def _edges2fashion(root: str | None, split: str, resolution: int, channels: int) -> InMemoryData:
    images, labels = load_idx_dataset(_root("edges2fashion", root), split)
    images = fit_images(images, resolution, channels)
    return InMemoryData(images, labels, "edges2fashion", conditions=edge_maps(images))


@DATASETS.register("pairs", summary="paired translation from data.root: side-by-side A|B images, or A/ and B/ "
                                   "folders matched by name (train/ and test/ inside, optionally)",
                   paper="Isola et al. 2017 (pix2pix)", info={"paired": True})
def _pairs(root: str | None, split: str, resolution: int, channels: int) -> InMemoryData:
    targets, inputs = load_pairs(_root("pairs", root), split, resolution, channels)
    return InMemoryData(targets, None, "pairs", conditions=inputs)


SNEAKER, ANKLE_BOOT = 7, 9  # Fashion-MNIST's classes


@DATASETS.register("sneakers2boots", summary="unpaired translation: Fashion-MNIST sneakers (domain A) and ankle boots "
                                            "(domain B) as joint samples (a, b) for model.arch=cyclegan",
                   paper="Zhu et al. 2017 (CycleGAN)",
                   info={"domains": True,
                         "domain_classes": {"dataset": "fashion-mnist", "A": SNEAKER, "B": ANKLE_BOOT}})
def _sneakers2boots(root: str | None, split: str, resolution: int, channels: int) -> InMemoryData:
    images, labels = load_idx_dataset(_root("sneakers2boots", root), split)
    images = fit_images(images, resolution, channels)
    return InMemoryData(joint := joint_samples(images[labels == SNEAKER], images[labels == ANKLE_BOOT]), None,
                        "sneakers2boots", conditions=joint)


@DATASETS.register("unpaired", summary="unpaired translation from data.root: trainA/ and trainB/ (testA/, testB/ "
                                      "for the test split), as joint samples (a, b) for model.arch=cyclegan",
                   paper="Zhu et al. 2017 (CycleGAN)", info={"domains": True})
def _unpaired(root: str | None, split: str, resolution: int, channels: int) -> InMemoryData:
    joint = load_unpaired(_root("unpaired", root), split, resolution, channels)
    return InMemoryData(joint, None, "unpaired", conditions=joint)


@DATASETS.register("cifar10", summary="CIFAR-10 python batches from data.root")
def _cifar(root: str | None, split: str, resolution: int, channels: int) -> InMemoryData:
    images, labels = load_cifar10(_root("cifar10", root), split)
    return InMemoryData(fit_images(images, resolution, channels), labels, "cifar10")


@DATASETS.register("folder", summary="a folder of images (recursive), centre-cropped and resized; "
                                      "first-level sub-folders are the classes",
                   info={"test_split": lambda root: False})  # every split is the folder itself
def _folder(root: str | None, split: str, resolution: int, channels: int) -> InMemoryData:
    images, labels = load_image_folder(_root("folder", root), resolution, channels)
    return InMemoryData(images, labels, "folder")


@DATASETS.register("prepared", summary="a memory-mapped set written by `steadygan prepare` (data.root: its "
                                        "folder); data.resolution/channels must match it",
                   info={"test_split": lambda root: (_root("prepared", root) / PREPARED_TEST / MANIFEST).is_file()})
def _prepared(root: str | None, split: str, resolution: int, channels: int) -> InMemoryData:
    # A prepared folder may hold its test split in test/ (e.g. `prepare --crops --region test
    # -o ROOT/test`): the evaluator's reference and the feature classifier's accuracy then use
    # it. Without one, every split is the folder itself, as for an image folder, and the floor
    # compares two disjoint halves of it.
    folder = _root("prepared", root)
    check_test_split(folder)
    if split == "test" and (folder / PREPARED_TEST / MANIFEST).is_file():
        return load_prepared(folder / PREPARED_TEST, resolution, channels)
    return load_prepared(folder, resolution, channels)


def has_test_split(name: str, root: str | None) -> bool:
    """Whether dataset ``name`` (at ``root``) has a test split of its own, known without loading
    it: a loader whose "test" split is its training data again says so in its registry entry."""
    says = DATASETS.get(name).info.get("test_split")
    return True if says is None else bool(says(root))


STACKED_SEEDS = {"train": 0, "test": 1}  # fixed: the data (and its classifier cache) never change


@DATASETS.register("stacked", summary="Stacked MNIST: 3 images of an MNIST-format set (data.root) as RGB, 1000 modes",
                   paper="Metz et al. 2017 (unrolled GAN); Srivastava et al. 2017 (VEEGAN)",
                   info={"protocol": "stacked"})
def _stacked(root: str | None, split: str, resolution: int, channels: int) -> InMemoryData:
    if channels != 3:
        raise ConfigError(f"data.name=stacked builds 3-channel images: set data.channels=3 (got {channels})")
    images, labels = load_idx_dataset(_root("stacked", root), split)
    stacked, codes = make_stacked_mnist(images, labels, len(images), STACKED_SEEDS[split])
    return InMemoryData(fit_images(stacked, resolution, 3), codes, "stacked", "stacked")


def _toy_loader(name: str):
    def load(root: str | None, split: str, resolution: int, channels: int, n: int = 100_000,
             seed: int = 0) -> InMemoryData:
        # The test split is a different draw of the same mixture.
        points, modes = sample_mixture(name, n, seed + (1 if split == "test" else 0))
        return InMemoryData(points, modes, name, "mixture")
    return load


# Generated data: the loader also takes the sample count and the seed.
_GENERATED = {"protocol": "mixture", "generated": True}
DATASETS.register("ring8", summary="8 Gaussians on the unit circle, std 0.01 (2-D)",
                  paper="Metz et al. 2017; Srivastava et al. 2017 (VEEGAN)", info=_GENERATED)(_toy_loader("ring8"))
DATASETS.register("grid25", summary="25 Gaussians on {-4,-2,0,2,4}^2, std 0.05 (2-D)",
                  paper="Lin et al. 2018 (PacGAN)", info=_GENERATED)(_toy_loader("grid25"))


def dataset_protocol(name: str) -> str:
    """How a registered dataset is evaluated: "image", "stacked" or "mixture" (see DataInfo)."""
    return DATASETS.get(name).info.get("protocol", "image")


def is_mixture(name: str | None) -> bool:
    """True for a registered 2-D mixture dataset (False for unknown names, e.g. in old reports)."""
    return name in DATASETS and dataset_protocol(name) == "mixture"


def mixture(name: str) -> tuple[torch.Tensor, float]:
    """The means and the standard deviation of a 2-D mixture dataset."""
    if dataset_protocol(name) != "mixture":
        raise ConfigError(f"dataset '{name}' is not a 2-D mixture")
    make_modes, std = TOY_MIXTURES[name]
    return make_modes(), std


def load_dataset(name: str, root: str | None = None, split: str = "train", resolution: int = 28,
                 channels: int = 1, limit: int | None = None, toy_samples: int = 100_000,
                 seed: int = 0) -> InMemoryData:
    """Load a dataset by registry name; ``limit`` keeps the first ``limit`` samples."""
    if resolution < 8:
        raise ConfigError(f"data.resolution must be >= 8 (got {resolution})")
    entry = DATASETS.get(name)
    kwargs = dict(root=root, split=split, resolution=resolution, channels=channels)
    if entry.info.get("generated"):
        kwargs.update(n=toy_samples, seed=seed)
    data = entry.factory(**kwargs)
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"data.limit must be >= 1 (got {limit})")
        data = data.subset(limit)
    return data
