"""Shared building blocks: normalisation by name, spectral norm, DCGAN initialisation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError

NORMS = ("none", "batch", "layer", "instance")


def norm2d(kind: str, channels: int) -> nn.Module:
    """Normalisation for (N, C, H, W) features."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # one group = LayerNorm over (C, H, W)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ConfigError(f"unknown normalisation '{kind}'; choose from: {', '.join(NORMS)}")


def norm1d(kind: str, features: int) -> nn.Module:
    """Normalisation for (N, F) features; instance norm has no meaning there."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    raise ConfigError(f"normalisation '{kind}' does not apply to dense layers; choose from: none, batch, layer")


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) on every conv, linear and embedding weight."""
    for child in list(module.modules()):
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.utils.parametrizations.spectral_norm(child)
    return module


class LocalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over this process's batch for inputs of any rank (what a SyncBatchNorm,
    which forgot whether it was BatchNorm1d or 2d, becomes again)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace, in place, every SyncBatchNorm inside ``module`` by a :class:`LocalBatchNorm`
    with its state (PyTorch converts one way only); returns ``module``."""
    for name, child in module.named_children():
        if isinstance(child, nn.SyncBatchNorm):
            device = next(child.buffers(), torch.empty(0)).device
            plain = LocalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats).to(device)
            plain.load_state_dict(child.state_dict())
            plain.train(child.training)
            setattr(module, name, plain)
        else:
            revert_sync_batchnorm(child)
    return module


def to_layout_of(x: Tensor, weight: Tensor) -> Tensor:
    """``x`` in the memory layout of a convolution's ``weight``: a feature map made by
    ``view`` from a linear layer is channels-first, and one elementwise layer (BatchNorm,
    ReLU) between it and a channels-last convolution would otherwise run its backward on
    mixed layouts, an order of magnitude slower on CPU."""
    if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def flatten_features(h: Tensor) -> Tensor:
    """``h.flatten(1)`` for a feature map that may be channels-last. Flattening keeps the
    channels-first order of features (the head's weights mean the same in either layout);
    the gradient coming back through it is then channels-first, and is converted to ``h``'s
    layout so the layers below do not run their backward on mixed layouts (a LeakyReLU's
    measured 25x slower on CPU)."""
    channels_last_only = h.is_contiguous(memory_format=torch.channels_last) and not h.is_contiguous()
    if h.requires_grad and h.dim() == 4 and channels_last_only:
        h.register_hook(lambda grad: grad.contiguous(memory_format=torch.channels_last))
    return h.flatten(1)


def is_convolutional(module: nn.Module) -> bool:
    """True if the network has 2-D convolutions: the ones a channels-last layout speeds up."""
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in module.modules())


def dcgan_init_(module: nn.Module) -> None:
    """Radford et al. 2016: conv/linear weights ~ N(0, 0.02), norm gains ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)):
            if getattr(m, "weight", None) is not None:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
