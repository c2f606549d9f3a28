"""Edge maps of images: the inputs of an edges-to-images translation set, computed from the
images themselves as pix2pix's edges2shoes computes them from photographs (there with HED; here
with the Sobel operator, enough for 28-px garments on a plain background).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
EDGE_THRESHOLD = 0.25  # of each image's strongest gradient: the outline and the larger inner lines
# Below this, a "gradient" is float rounding on a flat image (a step of one grey level, 1/255,
# gives a Sobel magnitude of 4/255 = 0.016).
NO_GRADIENT = 1e-3


def edge_maps(images: torch.Tensor, threshold: float = EDGE_THRESHOLD, chunk: int = 4096) -> torch.Tensor:
    """Black lines on white (uint8 (N, 1, H, W), 0 or 255): the pixels whose Sobel gradient
    magnitude (on the luminance, replicate-padded) is at least ``threshold`` times the image's
    largest; a flat image (no gradient above rounding) is all white."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError("edge_maps expects uint8 images (N, C, H, W)")
    kernels = torch.stack([SOBEL_X, SOBEL_X.t()]).unsqueeze(1)
    out = []
    for part in images.split(chunk):
        gray = part.float().mean(1, keepdim=True) / 255.0
        grad = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernels)
        magnitude = grad.square().sum(1, keepdim=True).sqrt()
        peak = magnitude.flatten(1).max(1).values.view(-1, 1, 1, 1)
        edges = (magnitude >= threshold * peak) & (peak > NO_GRADIENT)
        out.append(torch.where(edges, 0, 255).to(torch.uint8))
    return torch.cat(out)
