"""Random crops of a folder of images as a prepared dataset: ``steadygan prepare SRC --crops N``.

Patch and texture GANs train on crops of a few large images; so does the 64-px photograph
setup (``benchmarks/photos.py``). A crop set is defined by its sources and a seed:

- each crop's image is drawn in proportion to the area of that image's region, its top-left
  corner uniformly among the positions where the crop lies inside the region, and (with
  ``flip``) a horizontal flip with probability 1/2;
- a *region* keeps pixels apart: ``test`` is the last ``test_share`` of each image along its
  longer side, ``train`` the rest, ``all`` the whole image. Crops of the train region and
  crops of the test region never share a pixel, so an evaluation against test crops compares
  with pixels training never saw;
- each crop's label is the index of its source image (sorted by path): the proxy task the
  feature classifier learns where the images carry no classes of their own.

The manifest records the sources (relative path, sha256, size), the seed, the region and the
sha256 of the positions, so the same command on the same files gives the same bytes, and a
changed source is visible. The draw is written here from uniform numbers (not with
``Generator.choice``/``integers``) so that it depends only on NumPy's PCG64 stream.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError, DataError
from ..files import file_sha256
from .folder import list_images, to_8_bit

REGIONS = ("all", "train", "test")
CHUNK = 4096  # crops cut and written at a time


@dataclass(frozen=True)
class CropSpec:
    """What a crop set is: how many crops of which size, from which region, drawn with which seed."""

    count: int
    size: int = 64
    seed: int = 0
    region: str = "all"        # all | train | test
    test_share: float = 0.25   # the test region's share of each image's longer side
    flip: bool = False         # random horizontal flips

    def check(self) -> None:
        if self.count < 1:
            raise ConfigError(f"--crops must be >= 1 (got {self.count})")
        if self.size < 8:
            raise ConfigError(f"--crop-size must be >= 8 (got {self.size})")
        if self.region not in REGIONS:
            raise ConfigError(f"--region must be one of {', '.join(REGIONS)} (got {self.region!r})")
        if not 0.0 < self.test_share < 1.0:
            raise ConfigError(f"--test-share must be between 0 and 1, exclusive (got {self.test_share})")


def region_box(height: int, width: int, region: str, test_share: float) -> tuple[int, int, int, int]:
    """(top, left, height, width) of an image's region: ``test`` is the last ``test_share`` of
    the longer side (rounded to whole pixels), ``train`` what comes before it."""
    if region == "all":
        return 0, 0, height, width
    along_width = width >= height
    side = width if along_width else height
    cut = side - round(side * test_share)
    start, length = (0, cut) if region == "train" else (cut, side - cut)
    return (0, start, height, length) if along_width else (start, 0, length, width)


def crop_positions(boxes: list[tuple[int, int, int, int]], spec: CropSpec) -> np.ndarray:
    """(count, 4) int64 rows of (image, top, left, flip): image in proportion to its region's
    area, the corner uniform among the positions that keep the crop inside the region."""
    rng = np.random.Generator(np.random.PCG64(spec.seed))
    area = np.array([h * w for _, _, h, w in boxes], dtype=np.float64)
    cdf = np.cumsum(area) / area.sum()
    image = np.minimum(np.searchsorted(cdf, rng.random(spec.count), side="right"), len(boxes) - 1)
    top0, left0, h, w = (np.array(column, dtype=np.int64)[image] for column in zip(*boxes))
    top = top0 + np.floor(rng.random(spec.count) * (h - spec.size + 1)).astype(np.int64)
    left = left0 + np.floor(rng.random(spec.count) * (w - spec.size + 1)).astype(np.int64)
    flip = (rng.random(spec.count) < 0.5) if spec.flip else np.zeros(spec.count, dtype=bool)
    return np.stack([image, top, left, flip.astype(np.int64)], axis=1)


def read_source(path: Path, channels: int) -> np.ndarray:
    """A whole image as uint8 (H, W, channels)."""
    try:
        with Image.open(path) as img:
            pixels = np.asarray(to_8_bit(img, path).convert("L" if channels == 1 else "RGB"))
    except DataError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable image ({exc}); remove or replace it") from exc
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels)


def cut_crops(images: list[np.ndarray], positions: np.ndarray, size: int,
              resolution: int) -> Iterator[np.ndarray]:
    """The crops, a chunk at a time, as uint8 (n, resolution, resolution, C) (Lanczos-resized
    when ``resolution`` differs from the crop size)."""
    for start in range(0, len(positions), CHUNK):
        chunk = []
        for image, top, left, flip in positions[start:start + CHUNK]:
            crop = images[image][top:top + size, left:left + size]
            if flip:
                crop = crop[:, ::-1]
            if resolution != size:
                channels = crop.shape[2]
                pil = Image.fromarray(crop[:, :, 0] if channels == 1 else np.ascontiguousarray(crop))
                crop = np.asarray(pil.resize((resolution, resolution), Image.Resampling.LANCZOS))
                crop = crop.reshape(resolution, resolution, channels)
            chunk.append(crop)
        yield np.stack(chunk)


def crop_set(src: Path, spec: CropSpec, channels: int, resolution: int | None
             ) -> tuple[int, tuple[int, int, int], Iterator[np.ndarray], torch.Tensor | None, dict[str, Any]]:
    """What ``prepare --crops`` writes: (count, shape, chunks, labels, the manifest's ``crops``
    record). Every source is read once and held in memory while the crops are cut."""
    spec.check()
    resolution = resolution or spec.size
    files = list_images(src)
    images = [read_source(path, channels) for path in files]
    boxes = [region_box(img.shape[0], img.shape[1], spec.region, spec.test_share) for img in images]
    for path, (_, _, h, w) in zip(files, boxes):
        if h < spec.size or w < spec.size:
            where = "" if spec.region == "all" else f"its {spec.region} region is "
            hint = " or another --test-share" if spec.region != "all" else ""
            raise DataError(f"{path}: {where}{h}x{w} px, smaller than a {spec.size}-px crop; use a smaller "
                            f"--crop-size{hint}, or leave the image out")
    positions = crop_positions(boxes, spec)
    labels = torch.from_numpy(positions[:, 0].copy()) if len(files) > 1 else None
    record = {"count": spec.count, "size": spec.size, "seed": spec.seed, "region": spec.region,
              "test_share": spec.test_share, "flip": spec.flip,
              "positions_sha256": hashlib.sha256(np.ascontiguousarray(positions).tobytes()).hexdigest(),
              "labels": "the index of the source image" if labels is not None else None,
              "sources": [{"file": str(path.relative_to(src)), "sha256": file_sha256(path),
                           "height": int(img.shape[0]), "width": int(img.shape[1])}
                          for path, img in zip(files, images)]}
    return spec.count, (channels, resolution, resolution), cut_crops(images, positions, spec.size, resolution), \
        labels, record
