"""Paired translation metrics: how close each output is to its own input's target.

L1 (mean absolute difference), PSNR and SSIM (Wang et al. 2004) on images in [0, 1], per image
and then averaged. PSNR and SSIM come from torchmetrics, a maintained implementation (SSIM's
Gaussian window and constants are easy to get subtly wrong by hand). Two baselines a translation
must beat, each scored the same way:

- the identity map (the output is the input, its channels repeated to the target's), what a
  generator that learnt nothing but to copy would give;
- the nearest-neighbour lookup: the target of the training input closest to this input in
  pixels, what a generator that memorised its training pairs would give.
"""

from __future__ import annotations

import torch
from torch import Tensor

PSNR_CAP = 100.0   # dB: an output equal to its target has infinite PSNR; the mean needs a number
NEAREST_CHUNK = 256


SSIM_WINDOW = 11  # the Gaussian window of Wang et al. (sigma 1.5); smaller images: a uniform one, as large as fits


def _unit(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], in float32 or wider (float64 stays: SSIM's variances are differences of
    means, and in float32 their rounding is 1e-4 of the result on flat images)."""
    return images.to(torch.promote_types(images.dtype, torch.float32)).add(1.0).div(2.0).clamp(0.0, 1.0)


def paired_scores(outputs: Tensor, targets: Tensor) -> dict[str, float]:
    """``l1``, ``psnr`` (dB) and ``ssim`` of [-1, 1] outputs against their targets (N, C, H, W),
    each the mean over the images; L1 on the [0, 1] scale."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    if outputs.shape != targets.shape:
        raise ValueError(f"outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} differ in shape")
    o, t = _unit(outputs), _unit(targets)
    side = min(o.shape[-2:])
    window = min(SSIM_WINDOW, side if side % 2 else side - 1)
    psnr = peak_signal_noise_ratio(o, t, data_range=1.0, reduction="none", dim=(1, 2, 3)).clamp(max=PSNR_CAP)
    # torchmetrics sizes its Gaussian window from sigma (11 px at 1.5); below that, a uniform one.
    ssim = structural_similarity_index_measure(o, t, data_range=1.0, reduction="none",
                                               gaussian_kernel=window == SSIM_WINDOW, kernel_size=window)
    return {"l1": (o - t).abs().mean().item(), "psnr": psnr.mean().item(), "ssim": ssim.mean().item()}


def as_output(inputs: Tensor, targets: Tensor) -> Tensor:
    """The identity map's output: the inputs with the targets' channels (grey repeated to colour,
    colour averaged to grey)."""
    if inputs.shape[1] == targets.shape[1]:
        return inputs
    if inputs.shape[1] == 1:
        return inputs.expand(-1, targets.shape[1], -1, -1)
    return inputs.mean(1, keepdim=True).expand(-1, targets.shape[1], -1, -1)


def nearest_targets(inputs: Tensor, train_inputs: Tensor, train_targets: Tensor) -> Tensor:
    """For each input, the target of the training input nearest to it (Euclidean, in pixels)."""
    flat = train_inputs.flatten(1).float()
    picks = [torch.cdist(chunk.flatten(1).float(), flat).argmin(1) for chunk in inputs.split(NEAREST_CHUNK)]
    return train_targets[torch.cat(picks)]


def translation_scores(outputs: Tensor, inputs: Tensor, targets: Tensor, train_inputs: Tensor,
                       train_targets: Tensor) -> dict[str, dict[str, float]]:
    """The paired scores of a model's ``outputs`` for ``inputs`` and of both baselines, keyed
    model, identity, nearest (every image in [-1, 1])."""
    return {"model": paired_scores(outputs, targets),
            "identity": paired_scores(as_output(inputs, targets), targets),
            "nearest": paired_scores(nearest_targets(inputs, train_inputs, train_targets), targets)}
