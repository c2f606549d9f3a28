"""Sample grids and 2-D scatter plots written as PNG (our own grid code: no torchvision here)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..files import safe_write
from ..data.base import to_uint8_images
from ..errors import ConfigError


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


def save_grid(images: torch.Tensor, path: str | Path, scale: int = 1, nrow: int | None = None) -> Path:
    """Write a grid of ``nrow`` images per row (default: as square as possible)."""
    grid = make_grid(images, nrow)
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


def save_scatter(points: torch.Tensor, modes: torch.Tensor | None, path: str | Path, title: str = "") -> Path:
    import matplotlib.pyplot as plt

    fig = scatter_figure(points, modes, title)
    path = Path(path)
    try:
        safe_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png"))
    finally:
        plt.close(fig)
    return path


def figure_to_array(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
