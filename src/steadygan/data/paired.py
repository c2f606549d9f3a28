"""Paired image folders for translation (``data.name=pairs``), in the two layouts pix2pix's
datasets come in:

- side by side: every image is an input A and its target B joined horizontally (A | B, each
  half as wide as the image is high), as pix2pix ships edges2shoes, facades and maps;
- two folders: ``A/`` and ``B/`` holding images of the same names (extensions may differ).

``data.root`` holds the layout itself, or a ``train/`` and a ``test/`` folder each holding it
(``val/`` is taken for ``test/`` when there is no ``test/``); without split folders every split
is the whole set (the evaluation then says its test pairs are training pairs). Both halves are
made square and resized to ``data.resolution`` with ``data.channels`` channels, as an image
folder is (``folder.read_square_image``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .folder import _square, list_images, to_8_bit

SIDES = ("A", "B")


SPLITS = ("train", "test", "val")


def split_folder(root: Path, split: str) -> Path:
    """``root/train`` or ``root/test`` (``root/val`` standing in for test); ``root`` itself for
    every split when it has no split folder. One split folder without the other is an error:
    falling back to ``root`` would read the other split's pairs too."""
    present = [name for name in SPLITS if (root / name).is_dir()]
    if not present:
        return root
    if "train" not in present or present == ["train"]:
        missing = "train/" if "train" not in present else "test/ (or val/)"
        raise DataError(f"{root}: has {', '.join(p + '/' for p in present)} but no {missing}; a paired set with "
                        "split folders needs train/ and test/ (or val/), or no split folder at all")
    if split == "train":
        return root / "train"
    return root / ("test" if "test" in present else "val")


def _stem_map(folder: Path) -> dict[str, Path]:
    files = list_images(folder)
    out: dict[str, Path] = {}
    for f in files:
        key = str(f.relative_to(folder).with_suffix(""))
        if key in out:
            raise DataError(f"{folder}: {out[key].name} and {f.name} are one name with two extensions; keep one")
        out[key] = f
    return out


def matched_files(folder: Path) -> list[tuple[Path, Path]]:
    """The (A, B) files of a two-folder layout, matched by name; every unmatched name is an error."""
    a, b = (_stem_map(folder / side) for side in SIDES)
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    if only_a or only_b:
        def some(names: list[str]) -> str:
            return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        parts = [f"{len(only_a)} only in A/ ({some(only_a)})"] if only_a else []
        parts += [f"{len(only_b)} only in B/ ({some(only_b)})"] if only_b else []
        raise DataError(f"{folder}: every image in A/ needs one of the same name in B/; {'; '.join(parts)}")
    return [(a[k], b[k]) for k in sorted(a)]


def _open(path: Path, channels: int) -> Image.Image:
    try:
        with Image.open(path) as img:
            return to_8_bit(img, path).convert("L" if channels == 1 else "RGB")
    except DataError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable image ({exc}); remove or replace it") from exc


def _pixels(img: Image.Image, resolution: int, channels: int) -> np.ndarray:
    return np.asarray(_square(img, resolution)).reshape(resolution, resolution, channels)


def load_pairs(root: str | Path, split: str, resolution: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets B, inputs A), uint8 (N, C, H, W) each, from either layout."""
    folder = split_folder(Path(root), split)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; set data.root to a folder of paired images")
    two_folders = [(folder / side).is_dir() for side in SIDES]
    inputs, targets = [], []
    if any(two_folders):
        if not all(two_folders):
            raise DataError(f"{folder}: has {'A' if two_folders[0] else 'B'}/ but no "
                            f"{'B' if two_folders[0] else 'A'}/; a two-folder paired set needs both")
        for a, b in matched_files(folder):
            img_a, img_b = _open(a, channels), _open(b, channels)
            if img_a.size != img_b.size:
                raise DataError(f"{a.name}: A/ has it at {img_a.size[0]}x{img_a.size[1]} px, B/ at "
                                f"{img_b.size[0]}x{img_b.size[1]}; the two images of a pair must be the same size")
            inputs.append(_pixels(img_a, resolution, channels))
            targets.append(_pixels(img_b, resolution, channels))
    else:
        for path in list_images(folder):
            img = _open(path, channels)
            w, h = img.size
            if w != 2 * h:
                raise DataError(f"{path}: {w}x{h} px is not two square halves side by side (A | B, width = "
                                "2 x height); use the A/ and B/ layout for images of other shapes")
            inputs.append(_pixels(img.crop((0, 0, h, h)), resolution, channels))
            targets.append(_pixels(img.crop((h, 0, w, h)), resolution, channels))

    def stack(images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return stack(targets), stack(inputs)
