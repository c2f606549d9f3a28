"""Differentiable augmentation of the discriminator's inputs, fixed or adaptive.

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training") passes real *and* generated images through the same random, differentiable
transformations before D, in both players' updates, so D cannot memorise a small training
set and G still gets gradients through the transformation. ADA (Karras et al. 2020,
"Training Generative Adversarial Networks with Limited Data") applies each transformation
with a probability p that it adapts from an overfitting signal: r_t = E[sign D(real)], the
share of real samples D calls real (scaled to [-1, 1]); p rises while r_t is above a target
(0.6) and falls below it, fast enough to go from 0 to 1 in ``speed_kimg`` thousand images.

The operations here (written for this project in plain torch, per sample):

* ``color``: brightness + U(-0.5, 0.5); saturation (x - channel mean) * U(0, 2); contrast
  (x - image mean) * U(0.5, 1.5);
* ``translation``: a shift by up to 1/8 of the image in each direction, zero-filled;
* ``cutout``: a zeroed square of half the image side at a random centre.

Gradient penalties: the step hands penalties D *with* its augmentation (``score`` is D of
the augmented input), so R1, R2, WGAN-GP, ... differentiate with respect to the
un-augmented images, through the transformation: D is regularised where the data is (as
StyleGAN2-ADA does), and R1 reuses the logits of the loss's own forward.

Translation pairs: pix2pix's D judges an output beside its input image, so the geometric
operations move the two together (a shifted garment beside unshifted edges would be a pair
no G can make, and D would learn to tell pairs by their alignment); colour changes the output
alone. CycleGAN's joint samples hold one image of each domain: each gets its own colour draws.
Augmenting the pair jointly is pix2pix's own practice for its data (the same random crop and
flip of input and target), carried to D's inputs here.

Random draws are made for the global batch and sliced per process (``shard_of``), like all
of the step's randomness, so distributed ranks keep equal RNG states.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import Registry
from .collectives import global_mean, shard_of

OPERATIONS = ("color", "translation", "cutout")


def _uniform(n: int, like: Tensor) -> Tensor:
    """One U(0, 1) value per sample, shaped to broadcast over (C, H, W)."""
    return shard_of(lambda m: torch.rand(m, device=like.device, dtype=like.dtype), n).view(n, 1, 1, 1)


def color(x: Tensor) -> Tensor:
    """Brightness, saturation and contrast, each with its own per-sample factor."""
    n = len(x)
    x = x + (_uniform(n, x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (2 * _uniform(n, x)) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(n, x) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ``ratio`` of its size along each axis (integer pixels),
    filling with zeros. Written as a gather from the zero-padded batch, so its gradient is
    the same gather's transpose."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    draw = lambda m: torch.stack([torch.randint(-sh, sh + 1, (m,), device=x.device),  # noqa: E731
                                  torch.randint(-sw, sw + 1, (m,), device=x.device)], 1)
    shift = shard_of(draw, n)
    padded = F.pad(x, (sw, sw, sh, sh))
    rows = torch.arange(h, device=x.device).view(1, h) + sh - shift[:, :1]   # (n, h): source row in padded
    cols = torch.arange(w, device=x.device).view(1, w) + sw - shift[:, 1:]   # (n, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a square of side ``ratio`` x the image side, centred at a uniform random pixel
    (clipped at the border), per image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    draw = lambda m: torch.stack([torch.randint(0, h, (m,), device=x.device),  # noqa: E731
                                  torch.randint(0, w, (m,), device=x.device)], 1)
    centre = shard_of(draw, n)
    rows = torch.arange(h, device=x.device).view(1, h) - (centre[:, :1] - ch // 2)  # offset inside the box
    cols = torch.arange(w, device=x.device).view(1, w) - (centre[:, 1:] - cw // 2)
    inside = ((rows >= 0) & (rows < ch)).view(n, 1, h, 1) & ((cols >= 0) & (cols < cw)).view(n, 1, 1, w)
    return x * (~inside).to(x.dtype)


_OPS: dict[str, Callable[[Tensor], Tensor]] = {"color": color, "translation": translation, "cutout": cutout}


class Augment:
    """Applies each operation of ``policy`` to each image with probability ``p``.

    ``target`` (ADA): None keeps ``p`` fixed; a value in (0, 1) adapts it every ``interval``
    D updates from r_t = E[sign D(real)] (fed by :meth:`observe`)."""

    def __init__(self, policy: str = "color+translation+cutout", p: float = 1.0, target: float | None = None,
                 speed_kimg: float = 500.0, interval: int = 4) -> None:
        numbers = (("p", p), ("speed_kimg", speed_kimg)) + ((("target", target),) if target is not None else ())
        for key, value in numbers:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"augment {key} must be a number (got {value!r})")
        ops = [o for o in str(policy or "").split("+") if o]
        unknown = [o for o in ops if o not in _OPS]
        if not ops or unknown:
            raise ConfigError(f"augment policy {policy or ''!r}: give operations from {', '.join(OPERATIONS)} "
                              f"joined by '+'" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        if not 0 <= p <= 1:
            raise ConfigError(f"augment p must be in [0, 1] (got {p})")
        if target is not None and not 0 < target < 1:
            raise ConfigError(f"augment target must be in (0, 1) (got {target})")
        if not speed_kimg > 0 or int(interval) != interval or interval < 1:
            raise ConfigError(f"augment speed_kimg must be > 0 and interval an integer >= 1 "
                              f"(got {speed_kimg}, {interval})")
        self.ops, self.p, self.target = ops, float(p), target
        self.speed_kimg, self.interval = float(speed_kimg), int(interval)
        self._signs: list[Tensor] = []

    def __call__(self, x: Tensor) -> Tensor:
        return self.apply(x)[0]

    def apply(self, x: Tensor, condition: Tensor | None = None, slots: int = 1) -> tuple[Tensor, Tensor | None]:
        """``x`` augmented, and with it ``condition``, an image ``x`` is paired with (pix2pix's
        input): the geometric operations (translation, cutout) move both alike, so each pair
        stays aligned; colour changes ``x`` alone, since the condition is what G was given, not
        what D judges. ``slots``: independent images stacked by channel in ``x`` (CycleGAN's
        joint samples), each colour-jittered by its own draws, as its own domain's D sees it;
        the geometric draws, and with p < 1 whether an operation applies, are one per sample."""
        if self.p == 0 or x.ndim != 4:
            return x, condition
        for name in self.ops:
            if name == "color":
                augmented = color(x) if slots == 1 else torch.cat([color(part) for part in x.chunk(slots, 1)], 1)
                moved = condition
            elif condition is None:
                augmented, moved = _OPS[name](x), None
            else:
                joint = _OPS[name](torch.cat([x, condition], 1))
                augmented, moved = joint[:, :x.shape[1]], joint[:, x.shape[1]:]
            if self.p < 1:
                keep = _uniform(len(x), x) >= self.p  # per sample: this operation or not
                augmented = torch.where(keep, x, augmented)
                moved = None if moved is None else torch.where(keep, condition, moved)
            x, condition = augmented, moved
        return x, condition

    def observe(self, real_sign: Tensor, batch_size: int) -> None:
        """ADA: fold in one D update's E[sign D(real)]; every ``interval`` updates move p."""
        if self.target is None:
            return
        self._signs.append(real_sign.detach().reshape(()))
        if len(self._signs) < self.interval:
            return
        (r_t,) = global_mean([torch.stack(self._signs).mean()])  # every rank moves p alike
        self._signs.clear()
        images = batch_size * self.interval
        step = images / (self.speed_kimg * 1000)
        # sign(r_t - target), as the ADA paper's code: p stays put when r_t is exactly on target.
        direction = (r_t.item() > self.target) - (r_t.item() < self.target)
        self.p = min(1.0, max(0.0, self.p + step * direction))

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "signs": [float(s) for s in self._signs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = float(state["p"])
        self._signs = [torch.tensor(s) for s in state.get("signs", [])]


class AugmentedDiscriminator(nn.Module):
    """D behind an augmentation: ``D(augment(x))`` (with labels: ``D(augment(x), y)``).
    The step's scoring and the penalties see D through it; its parameters are D's.

    ``paired``: ``y`` is an input image ``x`` was translated from (pix2pix), moved with ``x`` by
    the geometric operations (:meth:`Augment.apply`). ``slots``: images of independent domains
    stacked by channel in ``x`` (CycleGAN, 2), colour-jittered apart."""

    def __init__(self, discriminator: nn.Module, augment: Augment, paired: bool = False, slots: int = 1) -> None:
        super().__init__()
        self.discriminator, self.augment = discriminator, augment
        self.paired, self.slots = paired, slots

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if self.paired:
            x, y = self.augment.apply(x, y, self.slots)
        else:
            x = self.augment.apply(x, slots=self.slots)[0]
        return self.discriminator(x) if y is None else self.discriminator(x, y)

    @property
    def class_head(self) -> nn.Module | None:
        """The wrapped D's class head (the aux-classifier penalty's), if it has one."""
        return getattr(self.discriminator, "class_head", None)

    def classify(self, x: Tensor) -> Tensor:
        """The wrapped D's class logits of the augmented samples: the head sees what D sees."""
        return self.discriminator.classify(self.augment(x))


AUGMENTS: Registry[Augment] = Registry("augmentation")


@AUGMENTS.register("diffaugment", summary="color + translation + cutout on real and generated images, every "
                                           "image (p=1; policy=ops joined by '+')",
                   paper="Zhao et al. 2020, Differentiable Augmentation for Data-Efficient GAN Training")
def _diffaugment(policy: str = "color+translation+cutout", p: float = 1.0) -> Augment:
    return Augment(policy, p)


@AUGMENTS.register("ada", summary="the same operations with a probability adapted to keep E[sign D(real)] "
                                   "at target (0.6), starting at p=0",
                   paper="Karras et al. 2020, Training Generative Adversarial Networks with Limited Data")
def _ada(policy: str = "color+translation+cutout", target: float = 0.6, speed_kimg: float = 500.0,
         interval: int = 4, p: float = 0.0) -> Augment:
    return Augment(policy, p, target, speed_kimg, interval)


def build_augment(spec: dict[str, Any] | None) -> Augment | None:
    """``{"name": "diffaugment" | "ada", **options}`` -> an Augment (None: no augmentation)."""
    if spec is None:
        return None
    spec = dict(spec)
    return AUGMENTS.build(spec.pop("name"), **spec)
