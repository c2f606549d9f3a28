"""In-memory datasets and the shuffling batch sampler the trainer draws from."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..core.batch import Batch
from ..errors import ConfigError, DataError

PROTOCOLS = ("image", "stacked", "mixture", "points")


@dataclass(frozen=True)
class DataInfo:
    """What a dataset is, without its samples: enough to build models, sample and evaluate.

    ``kind`` is "image" (uint8 (C, H, W) scaled to [-1, 1]) or "points" (float vectors);
    ``num_classes`` is 0 for unlabelled data; ``protocol`` names how it is evaluated:
    "image" (FID & co.), "stacked" (those plus the 1000-mode count), "mixture" (2-D mode
    coverage) or "points" (no protocol). Stored in every checkpoint.
    """

    name: str
    kind: str
    sample_shape: tuple[int, ...]
    num_classes: int = 0
    protocol: str = "image"
    condition_shape: tuple[int, ...] | None = None  # paired translation data: each sample's input image

    def __post_init__(self) -> None:
        if self.kind not in ("image", "points") or self.protocol not in PROTOCOLS:
            raise ValueError(f"bad dataset description: kind={self.kind!r}, protocol={self.protocol!r}")

    @property
    def paired(self) -> bool:
        """Each sample comes with its own input image (paired image-to-image translation)."""
        return self.condition_shape is not None

    def to_dict(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "sample_shape": list(self.sample_shape),
               "num_classes": self.num_classes, "protocol": self.protocol}
        if self.condition_shape is not None:  # absent for every other kind: older checkpoints read the same
            out["condition_shape"] = list(self.condition_shape)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> DataInfo:
        condition = d.get("condition_shape")
        return cls(d["name"], d["kind"], tuple(d["sample_shape"]), int(d["num_classes"]), d["protocol"],
                   None if condition is None else tuple(condition))


@dataclass
class InMemoryData:
    """Samples held in one tensor, with their labels and what they are.

    Images are uint8 (N, C, H, W) and are scaled to [-1, 1] per batch, so a 60k MNIST set
    costs 47 MB instead of 188 MB; 2-D toy points are float32 (N, 2) and used as they are.
    ``protocol`` defaults to "image" for uint8 samples and "points" otherwise; loaders of
    datasets with their own evaluation protocol (stacked, mixtures) say so.

    ``mapped`` marks samples that are a memory map of a prepared file (data/prepared.py), a
    set that may not fit in memory: they are never copied whole. ``to(device)`` then leaves
    them on the host and records where batches go (``batch_device``) and in which layout
    (``batch_layout``); ``batch()`` gathers each batch on the host and moves only that.
    Both fields are ignored for samples held in memory.
    """

    samples: torch.Tensor
    labels: torch.Tensor | None
    name: str
    protocol: str | None = None
    mapped: bool = False
    batch_device: torch.device | None = None  # mapped only; None: the host
    batch_layout: torch.memory_format = torch.contiguous_format  # mapped only; what an in-memory set would give
    # Paired translation data: sample i's input image (uint8 (N, C, H, W)); sample i is its target.
    conditions: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.samples) == 0:
            raise DataError(f"dataset '{self.name}' is empty")
        if self.labels is not None and len(self.labels) != len(self.samples):
            raise DataError(
                f"dataset '{self.name}': {len(self.samples)} samples but {len(self.labels)} labels"
            )
        if self.conditions is not None and (len(self.conditions) != len(self.samples) or self.conditions.ndim != 4
                                            or self.conditions.dtype != torch.uint8 or not self.is_image):
            raise DataError(f"dataset '{self.name}': paired inputs must be uint8 images (N, C, H, W), one per "
                            f"image sample ({len(self.samples)}); got {self.conditions.dtype} "
                            f"{tuple(self.conditions.shape)}")
        if self.protocol is None:
            self.protocol = "image" if self.is_image else "points"
        # Labels are class indices 0..K-1; K is read once here (the largest label + 1).
        self.num_classes = 0 if self.labels is None else int(self.labels.max()) + 1

    @property
    def is_image(self) -> bool:
        return self.samples.dtype == torch.uint8

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.samples.shape[1:])

    @property
    def info(self) -> DataInfo:
        return DataInfo(self.name, "image" if self.is_image else "points", self.sample_shape,
                        self.num_classes, self.protocol,
                        None if self.conditions is None else tuple(self.conditions.shape[1:]))

    def __len__(self) -> int:
        return len(self.samples)

    def to(self, device: torch.device, channels_last: bool = False) -> InMemoryData:
        """On ``device``; ``channels_last`` stores images in NHWC layout, so every batch
        drawn from them already has the layout a channels-last network wants."""
        labels = None if self.labels is None else self.labels.to(device)
        conditions = None if self.conditions is None else self.conditions.to(device)
        if conditions is not None and channels_last:
            conditions = conditions.contiguous(memory_format=torch.channels_last)
        samples = self.samples
        if self.mapped:
            # Moving or re-laying out a memory map would read the whole file into memory (host
            # or device): the samples stay as they are and each batch is moved alone.
            layout = torch.channels_last if channels_last and samples.ndim == 4 else self.batch_layout
            return replace(self, labels=labels, batch_device=torch.device(device), batch_layout=layout,
                           conditions=conditions)
        if channels_last and samples.ndim == 4:  # before the move: one copy on the device, not two
            samples = samples.contiguous(memory_format=torch.channels_last)
        return InMemoryData(samples.to(device), labels, self.name, self.protocol, conditions=conditions)

    def subset(self, n: int) -> InMemoryData:
        """The first n samples (``data.limit``); a view, so a memory map stays one."""
        labels = None if self.labels is None else self.labels[:n]
        conditions = None if self.conditions is None else self.conditions[:n]
        return replace(self, samples=self.samples[:n], labels=labels, conditions=conditions)

    def condition_images(self, index: torch.Tensor) -> torch.Tensor:
        """Paired data: the input images of these samples, scaled to [-1, 1]."""
        if self.conditions is None:
            raise DataError(f"dataset '{self.name}' has no paired input images; a translation model needs paired "
                            "data (see `steadygan methods`, datasets)")
        return self.conditions[index.to(self.conditions.device)].to(torch.get_default_dtype()).div_(127.5).sub_(1.0)

    def batch(self, index: torch.Tensor, labels: bool = False, conditions: bool = False) -> Batch:
        """The samples at these indices (images scaled to [-1, 1], points unchanged), with
        their labels when ``labels`` (a class-conditional model) asks for them, or their input
        images when ``conditions`` (a translation model) does."""
        index = index.to(self.samples.device)
        x = self.samples[index]
        if self.mapped:
            # Gathered from the map on the host (only these rows are read), laid out as an
            # in-memory set's batch would be, then moved: uint8, a quarter of the float bytes.
            if x.ndim == 4:
                x = x.contiguous(memory_format=self.batch_layout)
            if self.batch_device is not None:
                x = x.to(self.batch_device)
        # In torch's default dtype: float32, or float64 where a test asks for it.
        x = x.to(torch.get_default_dtype())
        if self.is_image:
            x = x.div_(127.5).sub_(1.0)
        if conditions:
            return Batch(x, self.condition_images(index))
        if not labels:
            return Batch(x)
        if self.labels is None:
            raise DataError(f"dataset '{self.name}' has no labels; a conditional model needs labelled data")
        return Batch(x, self.labels[index.to(self.labels.device)].long())


def to_float_images(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(127.5).sub(1.0)


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images to uint8, rounding to nearest."""
    return x.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def fit_images(images: torch.Tensor, resolution: int, channels: int) -> torch.Tensor:
    """Resize a uint8 (N, C, H, W) stack to (N, channels, resolution, resolution).

    Square inputs are resized (antialiased when shrinking); channel count 1 <-> 3 by
    repetition or ITU-R 601 luminance. Done once at load time, in chunks to bound memory.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError("fit_images expects a uint8 (N, C, H, W) tensor")
    n, c, h, w = images.shape
    if c not in (1, 3) or channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3 (got data {c}, requested {channels})")
    out = []
    for chunk in images.split(4096):
        x = chunk
        if c != channels:
            if channels == 3:
                x = x.expand(-1, 3, -1, -1)
            else:
                weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
                x = (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        if (h, w) != (resolution, resolution):
            y = F.interpolate(x.float(), size=(resolution, resolution), mode="bilinear",
                              align_corners=False, antialias=resolution < max(h, w))
            x = y.round().clamp(0, 255).to(torch.uint8)
        out.append(x.contiguous())
    return torch.cat(out)


class BatchSampler:
    """Draws batches without replacement, reshuffling each epoch from its own generator.

    Its state (generator, permutation, cursor) is part of every checkpoint, so a resumed
    run sees exactly the batches the uninterrupted run would have seen.
    """

    def __init__(self, n: int, batch_size: int, seed: int, dataset_name: str = "dataset") -> None:
        if batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1 (got {batch_size})")
        if batch_size > n:
            raise DataError(
                f"batch size {batch_size} is larger than {dataset_name} ({n} samples); "
                f"lower data.batch_size or use more data"
            )
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.generator)
        self.cursor = 0
        self.epoch = 0

    def next_index(self) -> torch.Tensor:
        # Drop the ragged tail of an epoch: every batch has the same size (BatchNorm and
        # per-batch statistics behave the same on every step).
        if self.cursor + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator)
            self.cursor = 0
            self.epoch += 1
        idx = self.perm[self.cursor:self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return idx

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(),
                "cursor": self.cursor, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"].cpu())  # CPU state, whatever map_location was
        self.perm = state["perm"].cpu().clone()
        self.cursor = int(state["cursor"])
        self.epoch = int(state["epoch"])
