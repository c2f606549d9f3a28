"""A run's sample picture: image grids and 2-D scatter plots written as PNG.

:func:`save_samples` is the one place that decides how a generator's samples are drawn (a
grid of images, one row per class for a conditional run, or the points over the mixture's
modes), for training's sample grids and for ``steadygan sample``. The grid code is our own:
there is no torchvision here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data import DataInfo, InMemoryData, mixture, to_uint8_images
from ..errors import ConfigError
from ..files import safe_write
from ..models import domain_slots

TOY_GRID_POINTS = 2500  # points in a 2-D run's sample picture: the PacGAN/VEEGAN evaluation sample size


def sample_grid_path(run_dir: str | Path, step: int) -> Path:
    """Where a run keeps the fixed-noise sample grid of ``step``."""
    return Path(run_dir) / "samples" / f"step-{step:08d}.png"


def newest_sample_grid(run_dir: str | Path) -> Path | None:
    found = sorted((Path(run_dir) / "samples").glob("step-*.png"))  # zero-padded: name order is step order
    return found[-1] if found else None


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """[-1, 1] float (N, C, H, W) -> uint8 (H', W', C) grid with ``padding`` pixels of gaps."""
    x = to_uint8_images(images).cpu()
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = torch.zeros(c, ncol * (h + padding) + padding, nrow * (w + padding) + padding, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    return grid.permute(1, 2, 0).numpy()


def save_grid(images: torch.Tensor, path: str | Path, scale: int = 1, nrow: int | None = None,
              padding: int = 2) -> Path:
    """Write a grid of ``nrow`` images per row (default: as square as possible); one image with
    ``padding=0`` is written as it is."""
    grid = make_grid(images, nrow, padding)
    img = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    return safe_write(Path(path), lambda tmp: img.save(tmp, format=_image_format(path)))


def _image_format(path: str | Path) -> str:
    """PIL's format name for a file name (the temp file of an atomic write has no extension)."""
    ext = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ConfigError(f"{path}: unknown image type '{ext}'; use .png (or .jpg, .webp, ...)")
    return fmt


def scatter_figure(points: torch.Tensor, modes: torch.Tensor | None, title: str = ""):
    """Generated 2-D points over the mixture's means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    p = points.detach().float().cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.4, color="tab:blue", label="generated")
    if modes is not None:
        m = modes.cpu().numpy()
        ax.scatter(m[:, 0], m[:, 1], s=30, marker="x", color="tab:red", label="modes")
        span = float(np.abs(m).max()) * 1.5
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def figure_to_array(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def class_rows(n: int, num_classes: int) -> tuple[int | None, torch.Tensor | None]:
    """One row per class: (samples per row, the label of each sample) with ``n`` rounded up
    to fill every row; (None, None) for an unconditional generator."""
    if not num_classes:
        return None, None
    columns = math.ceil(n / num_classes)
    return columns, torch.arange(num_classes).repeat_interleave(columns)


def fixed_sample_inputs(info: DataInfo, samples: int, num_classes: int, z_dim: int, seed: int,
                        device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor | None, int | None]:
    """The noise, labels and row length of a run's sample picture at every step: ``samples``
    images (one row per class for a conditional run, rounded up to fill the rows) or
    TOY_GRID_POINTS 2-D points. The noise comes from its own seeded generator, so drawing the
    picture never moves the training RNG (resume stays exact whatever the sample schedule)."""
    columns, labels = class_rows(samples, num_classes) if info.kind == "image" else (None, None)
    n = len(labels) if labels is not None else samples if info.kind == "image" else TOY_GRID_POINTS
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    if num_classes and labels is None:
        labels = torch.arange(n) % num_classes
    return z, None if labels is None else labels.to(device), columns


TRIPLETS_PER_ROW = 4  # a translation picture's row: input | output | target, four times


def fixed_translation_inputs(data: InMemoryData, samples: int, z_dim: int, seed: int,
                             device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A translation run's picture at every step: the noise, input images and targets of
    ``samples`` fixed training pairs (drawn from their own seed: the training RNG never moves)."""
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(data), generator=g)[:samples]
    batch = data.batch(index.to(data.samples.device), conditions=True)
    z = torch.randn(len(index), z_dim, generator=g).to(device)
    return z, batch.y.to(device), batch.x.to(device)


def translation_picture(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The images of a translation picture in reading order, and the images per row: each
    pair as input | output | target (a grey one beside colour ones is repeated to colour)."""
    channels = max(t.shape[1] for t in (inputs, outputs, targets))
    inputs, outputs, targets = (t.expand(-1, channels, -1, -1) for t in (inputs, outputs, targets))
    triplets = torch.stack([inputs, outputs, targets], 1).flatten(0, 1)
    return triplets, 3 * min(TRIPLETS_PER_ROW, len(inputs))


def cycle_picture(inputs: torch.Tensor, outputs: torch.Tensor, cycled: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A CycleGAN run's picture from joint samples: rows of a | A->B | A->B->A, then rows of
    b | B->A | B->A->B."""
    (a, b), (to_a, to_b), (back_a, back_b) = (domain_slots(t) for t in (inputs, outputs, cycled))
    return translation_picture(torch.cat([a, b]), torch.cat([to_b, to_a]), torch.cat([back_a, back_b]))


def save_samples(samples: torch.Tensor, path: str | Path, info: DataInfo, nrow: int | None = None,
                 scale: int = 1, title: str = "") -> np.ndarray:
    """Write a generator's samples as the picture its data calls for, and return the picture
    (H, W, 3 uint8) for TensorBoard: images as a grid of ``nrow`` per row, upscaled ``scale``
    times; 2-D points as a scatter over the mixture's modes (when the data is a mixture)."""
    if info.kind == "image":
        save_grid(samples, path, scale=scale, nrow=nrow)
        picture = make_grid(samples, nrow)
        return picture if picture.shape[2] == 3 else picture.repeat(3, 2)
    import matplotlib.pyplot as plt

    modes = mixture(info.name)[0] if info.protocol == "mixture" else None
    fig = scatter_figure(samples, modes, title)
    path = Path(path)
    try:
        safe_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png"))
        return figure_to_array(fig)
    finally:
        plt.close(fig)
