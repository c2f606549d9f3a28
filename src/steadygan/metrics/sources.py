"""What ``steadygan eval`` scores and scores against: its arguments turned into images,
a dataset, or saved statistics.

SAMPLES (what is scored) is a run directory (its generator draws the images), a folder of
images, or an ``.npy`` / ``.npz`` array. REF (what they are scored against) is a dataset
(a registry name, with ``--data-dir`` where it has no default folder; an MNIST-format IDX
folder; a CIFAR-10 folder; a folder written by ``steadygan prepare``), a folder of images, an
array, or a statistics file written by
``--save-stats``. A path that exists is read as a path, before any dataset name.

Images end up as uint8 (N, C, H, W) tensors with C = 1 or 3:

- arrays: uint8 (N, H, W, C) with values 0..255, or float (N, C, H, W) with values in
  [-1, 1] (a generator's output, rounded to uint8 as a run's samples are); an ``.npz``
  holds one array, or several of which one is named ``samples`` or ``images``;
- folders: PNG/JPEG/BMP/WebP files, searched recursively and read in sorted path order.
  All must have the same width and height. A folder whose files are all grayscale is
  1-channel; otherwise it is RGB (grayscale files repeated to three channels, alpha
  dropped). 16-bit grayscale is scaled to 8 bits (x / 257); 32-bit integer and float images are refused.

Channels are only converted where nothing is lost: grayscale is repeated to RGB for a
colour reference, and RGB becomes grayscale for a grayscale reference only when its three
channels are equal. Everything else is a one-line error that says what to do.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..data import DATASETS, DEFAULT_ROOTS, DataError, dataset_protocol, to_uint8_images
from ..data.folder import list_images, to_8_bit
from ..data.idx import find_split, load_idx_dataset
from ..data.prepared import MANIFEST, read_manifest
from ..errors import ConfigError
from .stats import ReferenceStats, load_stats

ARRAY_SUFFIXES = (".npy", ".npz")
GRAY_MODES = {"1", "L", "LA"}
COLOUR_MODES = {"P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"}
ARRAY_FORMS = "uint8 (N, H, W, C) with values 0..255, or float (N, C, H, W) with values in [-1, 1], C = 1 or 3"


@dataclass
class ImageSet:
    """uint8 images (N, C, H, W) read from ``source``; ``names`` label them in error messages."""

    images: torch.Tensor
    kind: str                       # "folder", "array" or "run"
    source: str
    names: list[str] | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.images)

    def _name(self, i: int) -> str:
        return self.names[i] if self.names else f"image {i}"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.source, "count": len(self), "shape": list(self.shape)}

    def with_channels(self, channels: int, reference: str = "the reference") -> ImageSet:
        """The same images with ``channels`` channels, converted only where nothing is lost."""
        have = self.shape[0]
        if have == channels:
            return self
        if channels == 3:  # grayscale -> RGB: three copies of the one channel, exact
            return ImageSet(self.images.repeat(1, 3, 1, 1), self.kind, self.source, self.names)
        x = self.images
        colour = ((x[:, 0] != x[:, 1]) | (x[:, 0] != x[:, 2])).flatten(1).any(1)
        if colour.any():
            # Which weights turn colour into gray is a choice; making it here would silently
            # change what is measured, so the user converts (or picks a colour reference).
            first = int(colour.nonzero()[0])
            raise DataError(f"{self.source}: {int(colour.sum())} of {len(self)} images are in colour (e.g. "
                            f"{self._name(first)}) but {reference} is grayscale; convert them to grayscale "
                            "first, or score against a colour reference")
        return ImageSet(x[:, :1].contiguous(), self.kind, self.source, self.names)

    def subset(self, n: int, seed: int) -> ImageSet:
        """n images drawn without replacement by a private generator, in their order (all if fewer)."""
        if n >= len(self):
            return self
        keep = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        names = None if self.names is None else [self.names[i] for i in keep.tolist()]
        return ImageSet(self.images[keep], self.kind, self.source, names)


@dataclass(frozen=True)
class DatasetRef:
    """A registered dataset and its folder (None: the dataset's default location)."""

    name: str
    root: str | None = None

    @property
    def protocol(self) -> str:
        return dataset_protocol(self.name)

    def native_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the dataset as stored: the reference size when no samples set it."""
        if self.name == "cifar10":
            return (3, 32, 32)
        if self.name == "folder":
            raise ConfigError("an image-folder dataset has no size of its own: give SAMPLES too")
        # Every other image dataset is read from MNIST-format IDX files (stacked: three of them as RGB).
        root = self.root or DEFAULT_ROOTS.get(self.name)
        if root is None:
            raise DataError(f"dataset '{self.name}' has no default location; add --data-dir FOLDER")
        if self.name == "prepared":  # its manifest says, without reading the images
            c, h, w = read_manifest(root)["shape"]
            return (c, h, w)
        images, _ = load_idx_dataset(Path(root).expanduser(), "train")
        return (3 if self.protocol == "stacked" else 1, *images.shape[2:])


# --- folders and arrays ------------------------------------------------------------------------

def read_image_folder(root: str | Path) -> ImageSet:
    """Every image under ``root`` (recursive, sorted) as one uint8 (N, C, H, W) tensor."""
    root = Path(root).expanduser()
    files = list_images(root)
    pixels: list[np.ndarray] = []
    names = [str(p.relative_to(root)) for p in files]
    size = None
    gray_only = True
    for path, name in zip(files, names):
        try:
            with Image.open(path) as img:
                img.load()
                img = to_8_bit(img, path)  # 16-bit grayscale scaled to 8 bits; 32-bit and float refused
                if img.mode not in GRAY_MODES | COLOUR_MODES:
                    raise DataError(f"{path}: {img.mode} images are not supported; save 8- or 16-bit PNG or JPEG "
                                    "files")
                if size is None:
                    size = img.size
                elif img.size != size:
                    raise DataError(f"{root}: images differ in size ({names[0]} is {size[0]}x{size[1]}, "
                                    f"{name} is {img.size[0]}x{img.size[1]}); resize them to one size")
                gray = img.mode in GRAY_MODES
                gray_only &= gray
                pixels.append(np.asarray(img.convert("L" if gray else "RGB")))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            raise DataError(f"{path}: unreadable image ({exc}); remove or replace it") from exc
    channels = 1 if gray_only else 3
    h, w = pixels[0].shape[:2]
    out = np.empty((len(pixels), channels, h, w), dtype=np.uint8)
    for i, p in enumerate(pixels):
        out[i] = p[None] if p.ndim == 2 else p.transpose(2, 0, 1)  # a grayscale file broadcasts to 3
    return ImageSet(torch.from_numpy(out), "folder", str(root), names)


def _load_array(path: Path) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)  # no pickles: an array file must not run code
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return loaded
        with loaded:
            keys = list(loaded.files)
            picked = keys[0] if len(keys) == 1 else next((k for k in ("samples", "images") if k in keys), None)
            if picked is not None:
                return loaded[picked]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{path}: not a readable .npy/.npz array ({first_line})") from exc
    raise DataError(f"{path}: holds {len(keys)} arrays ({', '.join(keys) or 'none'}); keep one, "
                    "or name the images 'samples'")


def read_array(path: str | Path) -> ImageSet:
    """An ``.npy``/``.npz`` array of images (see the module docstring for the two layouts)."""
    path = Path(path).expanduser()
    arr = _load_array(path)
    where = f"{path}: array of {arr.dtype} {tuple(arr.shape)}"
    if arr.ndim != 4:
        raise DataError(f"{where} has {arr.ndim} dimensions; expected 4: {ARRAY_FORMS}")
    if arr.size == 0:
        raise DataError(f"{where} is empty")
    if arr.dtype == np.uint8:
        if arr.shape[3] not in (1, 3):
            hint = " (it looks channels-first: uint8 arrays are (N, H, W, C))" if arr.shape[1] in (1, 3) else ""
            raise DataError(f"{where}: the last axis must be 1 or 3 channels{hint}; expected {ARRAY_FORMS}")
        images = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
    elif np.issubdtype(arr.dtype, np.floating):
        if arr.shape[1] not in (1, 3):
            hint = " (it looks channels-last: float arrays are (N, C, H, W))" if arr.shape[3] in (1, 3) else ""
            raise DataError(f"{where}: axis 1 must be 1 or 3 channels{hint}; expected {ARRAY_FORMS}")
        if not np.isfinite(arr).all():
            raise DataError(f"{where} holds NaN or infinite values; expected {ARRAY_FORMS}")
        low, high = float(arr.min()), float(arr.max())
        if low < -1 or high > 1:
            raise DataError(f"{where} has values in [{low:.4g}, {high:.4g}], outside [-1, 1]; float arrays "
                            "are images scaled to [-1, 1] (store 0..255 pixels as uint8 (N, H, W, C))")
        x = torch.from_numpy(np.ascontiguousarray(arr))
        # float32 (what a generator outputs) is rounded exactly as a run's samples are;
        # half precision is widened first so the rounding is not done in 11 bits.
        images = to_uint8_images(x.float() if x.dtype == torch.float16 else x)
    else:
        raise DataError(f"{where}: dtype {arr.dtype} is not supported; expected {ARRAY_FORMS}")
    return ImageSet(images, "array", str(path))


# --- the arguments -----------------------------------------------------------------------------

def is_run_dir(path: Path) -> bool:
    """A directory written by `steadygan train` (it has config.yaml or checkpoints/)."""
    return path.is_dir() and ((path / "config.yaml").is_file() or (path / "checkpoints").is_dir())


def _dataset_folder(path: Path) -> DatasetRef | None:
    """An IDX, CIFAR-10 or prepared folder as a dataset; None for anything else."""
    if (path / MANIFEST).is_file():
        return DatasetRef("prepared", str(path))
    try:
        find_split(path, "train", "images")
        return DatasetRef("idx", str(path))
    except DataError:
        pass
    if (path / "cifar-10-batches-py").is_dir() or (path / "data_batch_1").is_file():
        return DatasetRef("cifar10", str(path))
    return None


def read_samples(arg: str) -> Path | ImageSet:
    """SAMPLES: a run directory (returned as a Path), a folder of images or an array."""
    path = Path(arg).expanduser()
    if is_run_dir(path):
        return path
    if path.is_dir():
        return read_image_folder(path)
    if path.is_file() and path.suffix.lower() in ARRAY_SUFFIXES:
        return read_array(path)
    what = "no such file or folder" if not path.exists() else "not a folder or an .npy/.npz file"
    raise DataError(f"{arg}: {what}; SAMPLES is a run directory, a folder of images or an .npy/.npz array")


def read_reference(arg: str, data_dir: str | None = None) -> DatasetRef | ImageSet | ReferenceStats:
    """REF: a dataset, a folder of images, an array or a statistics file (see the module doc)."""
    path = Path(arg).expanduser()
    if path.exists():
        if data_dir is not None:
            raise ConfigError(f"--data-dir goes with a dataset name (--ref fashion-mnist --data-dir DIR); "
                              f"--ref {arg} is already a path")
        if path.is_dir():
            return _dataset_folder(path) or read_image_folder(path)
        if path.suffix.lower() in ARRAY_SUFFIXES:
            return read_array(path)
        return load_stats(path)  # any other file must be one written by --save-stats
    return _named_dataset(arg, data_dir, "--ref")


def read_classifier_data(arg: str) -> DatasetRef:
    """--classifier-data: a dataset name, an IDX or CIFAR-10 folder, or a folder of images
    whose first-level sub-folders are the classes."""
    path = Path(arg).expanduser()
    if path.is_dir():
        return _dataset_folder(path) or DatasetRef("folder", str(path))
    return _named_dataset(arg, None, "--classifier-data")


def _named_dataset(name: str, data_dir: str | None, flag: str) -> DatasetRef | ImageSet:
    if name not in DATASETS:
        raise ConfigError(f"{flag} {name}: no such file or folder, and not a dataset name (datasets: "
                          f"{', '.join(DATASETS.names())})")
    if dataset_protocol(name) == "mixture":
        raise ConfigError(f"{flag} {name} is 2-D points: a 2-D run is scored against its own mixture "
                          "(steadygan eval RUN, without --ref)")
    if name == "folder":
        if data_dir is None:
            raise ConfigError(f"{flag} folder needs --data-dir FOLDER (or give the folder itself)")
        return read_image_folder(data_dir) if flag == "--ref" else DatasetRef("folder", data_dir)
    return DatasetRef(name, data_dir)
