"""Image completion (inpainting) with a trained generator: search its latent space.

Semantic inpainting (Yeh et al. 2017, "Semantic Image Inpainting with Deep Generative
Models"): find the z whose image G(z) matches the known pixels (contextual loss, an L1
distance on the known pixels only) and that the discriminator finds realistic (prior loss,
the non-saturating form softplus(-D(G(z))) of their log(1 - D(G(z)))), then fill the
unknown pixels from G(z). The known pixels are copied from the input in uint8, so they stay
exactly as they were.

Masks are 1 where a pixel is known and 0 where it is to be generated: ``center`` (the
middle half of each side missing), ``left`` (the left half missing), ``random`` (each pixel
missing with probability 0.5, seeded) or a PNG whose dark pixels (< 128) mark the region to
fill. A conditional generator searches with a given class, or with every class, keeping
the best match.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from .. import progress
from ..core.pair import call
from ..data import DataError, to_float_images, to_uint8_images
from ..errors import ConfigError

MASK_KINDS = ("center", "left", "random")


def make_mask(kind: str | Path, resolution: int, seed: int = 0) -> Tensor:
    """A (1, 1, H, W) float mask, 1 = known pixel, from a kind name or a PNG file."""
    if str(kind) in MASK_KINDS:
        mask = torch.ones(resolution, resolution)
        q = resolution // 4
        if kind == "center":
            mask[q:resolution - q, q:resolution - q] = 0
        elif kind == "left":
            mask[:, :resolution // 2] = 0
        else:
            g = torch.Generator().manual_seed(seed)
            mask = (torch.rand(resolution, resolution, generator=g) >= 0.5).float()
    else:
        path = Path(kind)
        if not path.is_file():
            raise ConfigError(f"--mask must be one of {', '.join(MASK_KINDS)} or a PNG file; {path} does not exist")
        try:
            with Image.open(path) as img:
                gray = np.asarray(img.convert("L"))
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"{path}: unreadable mask image ({exc})") from exc
        if gray.shape != (resolution, resolution):
            raise ConfigError(f"{path}: the mask is {gray.shape[1]}x{gray.shape[0]} px but the run's images are "
                              f"{resolution}x{resolution}")
        mask = torch.from_numpy((gray >= 128).astype(np.float32))
    check_mask(mask)
    return mask.view(1, 1, resolution, resolution)


def check_mask(mask: Tensor) -> None:
    known = int(mask.sum().item())
    if known == mask.numel():
        raise ConfigError("the mask marks every pixel as known: nothing to complete (dark pixels = to fill)")
    if known == 0:
        raise ConfigError("the mask marks every pixel as unknown: nothing to match the generator to")


def read_image(path: str | Path, resolution: int, channels: int) -> Tensor:
    """One image file -> uint8 (1, C, H, W); its size must be the run's resolution."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such image") from exc
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from exc
    if arr.shape[:2] != (resolution, resolution):
        raise DataError(f"{path}: the image is {arr.shape[1]}x{arr.shape[0]} px but the run generates "
                        f"{resolution}x{resolution}; resize it first")
    return torch.from_numpy(arr.reshape(resolution, resolution, channels).copy()).permute(2, 0, 1).unsqueeze(0)


@dataclass
class Completion:
    completed: Tensor   # uint8 (N, C, H, W): known pixels from the input, the rest from G(z)
    generated: Tensor   # uint8 (N, C, H, W): G(z) itself
    z: Tensor           # (N, z_dim) the latent found for each image
    labels: Tensor | None  # the class used for each image (conditional generators)
    loss: Tensor        # (N,) final contextual + prior loss of each image


def _losses(G: nn.Module, D: nn.Module | None, z: Tensor, y: Tensor | None, target: Tensor, mask: Tensor,
            prior_weight: float) -> Tensor:
    """Per-sample loss: mean |G(z) - x| over the known pixels, plus the prior term."""
    fake = call(G, z, y)
    known = mask.expand_as(fake)
    contextual = ((fake - target).abs() * known).flatten(1).sum(1) / known.flatten(1).sum(1)
    if D is None or prior_weight == 0:
        return contextual
    return contextual + prior_weight * F.softplus(-call(D, fake, y))


def complete(G: nn.Module, images: Tensor, mask: Tensor, z_dim: int, D: nn.Module | None = None,
             labels: Tensor | None = None, num_classes: int = 0, steps: int = 500, lr: float = 0.05,
             prior_weight: float = 0.003, restarts: int = 4, seed: int = 0) -> Completion:
    """Complete uint8 ``images`` (N, C, H, W) where ``mask`` (1 = known) is 0.

    Every image gets ``restarts`` latent starts (and, for a conditional generator without
    ``labels``, every class), optimised together with Adam for ``steps`` steps; the best
    by final loss is kept. Deterministic for a given ``seed``; the global RNG is untouched.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError("complete expects uint8 (N, C, H, W) images")
    if mask.shape[-2:] != images.shape[-2:]:
        raise ConfigError(f"mask is {tuple(mask.shape[-2:])} but the images are {tuple(images.shape[-2:])}")
    check_mask(mask)
    if steps < 1 or restarts < 1 or not lr > 0 or not prior_weight >= 0:
        raise ConfigError("complete needs steps >= 1, restarts >= 1, lr > 0 and prior_weight >= 0")
    device = next(G.parameters()).device
    n = len(images)
    classes = [None] if num_classes == 0 else ([labels] if labels is not None else
                                                [torch.full((n,), k, dtype=torch.long) for k in range(num_classes)])
    # Candidates: (class choice) x restarts x images, flattened into one batch.
    cands = len(classes) * restarts
    target = to_float_images(images).to(device).repeat(cands, 1, 1, 1)
    mask = mask.to(device).float()
    y = None if classes[0] is None else torch.cat([c.repeat(restarts) for c in classes]).to(device)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(cands * n, z_dim, generator=g).to(device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    frozen = [p for net in (G, D) if net is not None for p in net.parameters()]
    flags = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)  # only z is optimised
    try:
        with progress.bar(steps, f"completing {n} image(s) x {cands} start(s)") as shown:
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                _losses(G, D, z, y, target, mask, prior_weight).sum().backward()
                opt.step()
                shown.update()
        with torch.no_grad():
            loss = _losses(G, D, z, y, target, mask, prior_weight).view(cands, n)
            best = loss.argmin(0)
            pick = best * n + torch.arange(n, device=device)
            z_best = z.detach()[pick]
            y_best = None if y is None else y[pick]
            generated = to_uint8_images(call(G, z_best, y_best)).cpu()
    finally:
        for p, flag in zip(frozen, flags):
            p.requires_grad_(flag)
    known = mask.cpu().bool().expand_as(images)
    completed = torch.where(known, images, generated)
    return Completion(completed, generated, z_best.cpu(), None if y_best is None else y_best.cpu(),
                      loss.gather(0, best.unsqueeze(0)).squeeze(0).cpu())


def masked_error(completed: Tensor, original: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error per image over the unknown pixels, in [0, 1] pixel units."""
    unknown = (mask < 0.5).expand_as(original)
    diff = (completed.float() - original.float()).abs() / 255.0
    return (diff * unknown).flatten(1).sum(1) / unknown.flatten(1).sum(1)
