"""A folder of images (PNG/JPEG/BMP/WebP, searched recursively), made square and resized.

Labels are the index of each image's first-level sub-folder (sorted); a folder without
sub-folders is unlabelled.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _square(img: Image.Image, resolution: int) -> Image.Image:
    """Centre-crop to a square, then resize (Lanczos) to resolution x resolution."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return img.resize((resolution, resolution), Image.Resampling.LANCZOS) if side != resolution else img


def list_images(root: str | Path) -> list[Path]:
    """The image files under ``root`` (recursive, sorted); DataError when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, recursively)")
    return files


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")  # PIL's 16-bit grayscale, each byte order


def to_8_bit(img: Image.Image, path: Path) -> Image.Image:
    """A 16-bit grayscale image scaled to 8 bits (x / 257, rounded: 65535 -> 255), the others
    as they are. PIL's own conversion clips instead (every pixel above 255 turns white).
    32-bit integer and float pixels have no range to scale from: refused."""
    if img.mode in SIXTEEN_BIT_MODES:
        pixels = np.asarray(img).astype(np.float64)
        return Image.fromarray(np.rint(pixels / 257.0).astype(np.uint8), mode="L")
    if img.mode in ("I", "F"):
        raise DataError(f"{path}: {img.mode} images (32-bit integer or float pixels) have no range to scale to "
                        "8 bits from; convert them to 8 or 16 bits first")
    return img


def read_square_image(path: Path, resolution: int, channels: int) -> np.ndarray:
    """One image as uint8 (resolution, resolution, channels): converted, centre-cropped, resized.

    Shared by the in-memory loader and ``steadygan prepare`` (which streams a folder one
    chunk at a time), so both give the same pixels."""
    try:
        with Image.open(path) as img:
            img = _square(to_8_bit(img, path).convert("L" if channels == 1 else "RGB"), resolution)
            return np.asarray(img).reshape(resolution, resolution, channels)
    except DataError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable image ({exc}); remove or replace it") from exc


GREY_MODES = ("1", "L", "LA", "I", "F", *SIXTEEN_BIT_MODES)  # PIL modes with one grey channel (alpha aside)


def has_colour(path: Path) -> bool:
    """Whether the image at ``path`` has colour: a colour mode whose channels differ somewhere
    (an RGB file with three equal channels is grey, as evaluation counts it). The mode is read
    from the header; only colour-mode files are decoded."""
    try:
        with Image.open(path) as img:
            if img.mode in GREY_MODES:
                return False
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return False  # reading it for the data says what is wrong with it
    return bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())


def load_image_folder(root: str | Path, resolution: int, channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; set data.root to a folder of images")
    files = list_images(root)
    if channels == 1:  # data.channels defaults to 1: say so before colour photographs turn grey
        colour = next((path for path in files if has_colour(path)), None)
        if colour is not None:
            warnings.warn(f"{root} holds colour images ({colour.name}, ...); data.channels=1 reads them as grey "
                          "(--set data.channels=3 keeps the colour)", stacklevel=2)
    images = np.empty((len(files), resolution, resolution, channels), dtype=np.uint8)
    for i, path in enumerate(files):
        images[i] = read_square_image(path, resolution, channels)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), class_labels(root, files)


def class_labels(root: Path, files: list[Path]) -> torch.Tensor | None:
    """Each image's class: the index of its first-level sub-folder (sorted); None without classes."""
    tops = [p.relative_to(root).parts for p in files]
    if all(len(parts) == 1 for parts in tops):
        return None
    if any(len(parts) == 1 for parts in tops):
        # Images both beside and inside sub-folders: no consistent classes. Fine for an
        # unconditional run; a conditional one then says it needs labelled data.
        warnings.warn(f"{root}: some images lie beside the class sub-folders; the folder is read as "
                      "unlabelled (put every image in a class sub-folder to use the classes)", stacklevel=3)
        return None
    index = {c: i for i, c in enumerate(sorted({parts[0] for parts in tops}))}
    return torch.tensor([index[parts[0]] for parts in tops], dtype=torch.int64)
