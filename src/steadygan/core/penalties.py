"""Gradient penalties: regularisers built from a gradient of the discriminator.

Two families:

* input-gradient penalties (``r1``, ``r2``, ``wgan-gp``, ``zero-gp``, ``dragan``) act on
  grad_x D(x) at some points x, one norm per sample (each sample flattened first);
* parameter-gradient penalties (``seed-param``, ``consensus``, ``nk``) act on the
  gradient of a loss with respect to network parameters, through a double backward.

Each penalty is a small object with ``weight`` and ``every``. The step adds
``weight * every * value`` on the steps where ``due(step)`` holds: lazy regularisation
(Karras et al. 2020, StyleGAN2) applies the term every k steps with gain k, so its
expected contribution per step is unchanged.

A penalty returns its *unweighted* value; the step owns weighting and the lazy gain.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor

from ..errors import ConfigError
from ..registry import Registry
from .collectives import global_mean, global_std, shard_of
from .pair import swap_domains

# Capabilities a penalty may ask the step for (``Penalty.needs``).
REAL_GRAD = "real_grad"  # real batch is a leaf requiring grad; real_logits built from it
FAKE_GRAD = "fake_grad"  # fake batch is a leaf requiring grad (d step)
D_LOSS = "d_loss"        # the discriminator's loss, with its graph, in either step
G_LOSS = "g_loss"        # the generator's loss with a graph through G, in either step
SECOND_SAMPLE = "second_sample"  # g step: the noise and G bound to the batch's labels, for another sample
PAIRED_TARGET = "paired_target"  # the batch's real sample i is generated sample i's own target (paired translation)
CLASS_LOGITS = "class_logits"    # D's class logits (an auxiliary classifier head) and the batch's labels
TRANSLATE = "translate"          # g step: G at this step's noise, for other input images (cycle models)


@dataclass(kw_only=True)
class PenaltyInputs:
    """What a penalty may read during one player's step (built by ``steadygan.core.step``).

    ``score`` is the discriminator as a function of the samples alone, already bound to the
    batch's labels when the pair is conditional: input-gradient penalties differentiate it
    with respect to the image, with the label held fixed, and never see labels.
    """

    player: str                 # "d" or "g": whose update this is
    score: Callable[[Tensor], Tensor]
    d_params: list[Tensor]
    g_params: list[Tensor]
    real: Tensor
    fake: Tensor
    real_logits: Tensor | None
    fake_logits: Tensor
    d_loss: Tensor | None
    g_loss: Tensor | None
    grad_scale: float = 1.0     # fp16: the gradient scaler's scale, for the inner gradients
    z: Tensor | None = None     # g step: the noise ``fake`` was drawn from
    generate: Callable[[Tensor], Tensor] | None = None  # g step: G(noise) for the batch's labels
    labels: Tensor | None = None  # the batch's classes (real and generated samples share them)
    classify: Callable[[Tensor], Tensor] | None = None  # D's class logits (N, K) of a batch of samples
    translate: Callable[[Tensor], Tensor] | None = None  # g step: G(z, inputs) at this step's noise
    _own_loss_grads: list[Tensor | None] | None = field(default=None, init=False, repr=False)

    def own_loss_grads(self) -> list[Tensor | None]:
        """grad of the updating player's loss w.r.t. its own parameters, with the graph kept
        for a double backward (None for a parameter the loss does not reach). Computed at
        most once per update: seed-param and consensus, both due, share it."""
        if self._own_loss_grads is None:
            self._own_loss_grads = param_grads(self.own_loss, self.own_params, self.grad_scale)
        return self._own_loss_grads

    def __post_init__(self) -> None:
        if self.player not in ("d", "g"):
            raise ValueError(f"PenaltyInputs.player is 'd' or 'g' (got {self.player!r})")

    @property
    def own_loss(self) -> Tensor:
        loss = self.d_loss if self.player == "d" else self.g_loss
        assert loss is not None, "the step always computes the updating player's loss"
        return loss

    @property
    def own_params(self) -> list[Tensor]:
        return self.d_params if self.player == "d" else self.g_params


class Penalty(ABC):
    """Base class: validated ``weight`` and ``every``; subclasses define ``value``."""

    name: ClassVar[str]
    players: ClassVar[tuple[str, ...]] = ("d",)
    needs: ClassVar[frozenset[str]] = frozenset()
    weight_alias: ClassVar[str] = "weight"  # the paper's name for the weight, accepted in specs
    default_weight: ClassVar[float] = 10.0
    # Whether the penalty differentiates a gradient (a double backward through the networks):
    # such penalties cannot run under train.compile. A user's penalty of the logits alone
    # sets it False.
    second_order: ClassVar[bool] = True

    def __init__(self, weight: float | None = None, every: int = 1) -> None:
        weight = self.default_weight if weight is None else float(weight)
        if not weight >= 0 or weight == float("inf"):
            raise ConfigError(f"penalty '{self.name}': weight must be a finite number >= 0 (got {weight})")
        if int(every) != every or every < 1:
            raise ConfigError(f"penalty '{self.name}': every must be an integer >= 1 (got {every})")
        self.weight, self.every = weight, int(every)

    def state_dict(self) -> dict[str, Any]:
        """What a penalty carries from step to step (checkpointed); most carry nothing."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - most penalties carry nothing
        pass

    def due(self, step: int) -> bool:
        """Lazy regularisation: apply on steps 0, k, 2k, ..."""
        return step % self.every == 0

    @property
    def gain(self) -> int:
        return self.every

    @abstractmethod
    def value(self, inputs: PenaltyInputs) -> Tensor:
        """The unweighted penalty for this step (a scalar with a graph)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight}, every={self.every})"


PENALTIES: Registry[Penalty] = Registry("penalty")


def at_least_fp32(t: Tensor) -> Tensor:
    """``t`` in float32, or as it is when wider: under autocast, logits and gradients are
    taken up to fp32 for the losses and norms; float64 (precision tests) stays float64."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


# --- input-gradient penalties --------------------------------------------------------------

def per_sample_sq_grad_norm(outputs: Tensor, points: Tensor, grad_scale: float = 1.0) -> Tensor:
    """||grad_x D(x_i)||^2 for each sample i, with the graph kept for the outer backward.

    Each sample's gradient is flattened before the norm (over C, H, W together), never
    taken over one axis. Summing the outputs gives every sample's own gradient because a
    D without batch coupling makes D(x_i) depend on x_i alone. A D that scores a map of
    patches (PatchGAN, ``outputs`` (N, h, w)) is differentiated through each sample's mean
    patch score, the quantity its loss averages, so a strength means the same as for a
    one-logit D (for which the mean is the logit itself, bit for bit). ``grad_scale``: under
    fp16 autocast, the outputs are multiplied by the gradient scaler's scale before the
    inner backward (small fp16 gradients would flush to zero) and the gradient divided after.
    """
    per_sample = outputs if outputs.ndim == 1 else outputs.reshape(len(outputs), -1).mean(1)
    (grad,) = torch.autograd.grad(per_sample.sum() * grad_scale, points, create_graph=True)
    if grad_scale != 1.0:
        grad = at_least_fp32(grad) / grad_scale
    return at_least_fp32(grad).flatten(1).square().sum(1)


def per_sample_mix(a: Tensor, b: Tensor) -> Tensor:
    """alpha * a + (1 - alpha) * b with one alpha ~ U(0, 1) per sample (not per element);
    across processes, each rank's slice of one draw for the global batch."""
    alpha = shard_of(lambda n: torch.rand((n,) + (1,) * (a.ndim - 1), device=a.device, dtype=a.dtype), a.shape[0])
    return (alpha * a + (1 - alpha) * b).detach().requires_grad_(True)


def _layout(x: Tensor) -> torch.memory_format:
    """The memory format ``torch.rand_like(x)`` would fill in (its values follow memory order)."""
    return torch.channels_last if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


def _norm(sq: Tensor) -> Tensor:
    # sqrt has an infinite derivative at 0; the epsilon keeps the backward finite.
    return torch.sqrt(sq + 1e-12)


# Each penalty is first a plain function of a discriminator and tensors, weighted, for use in
# any training loop; the registry classes below call the same function with weight 1 (the
# step applies the weight and the lazy gain). ``d`` is a module or any function of the
# samples (labels already bound for a conditional D).

def r1_penalty(d: Callable[[Tensor], Tensor], real: Tensor, gamma: float = 10.0,
               logits: Tensor | None = None, grad_scale: float = 1.0) -> Tensor:
    """(gamma/2) E||grad_x D(x)||^2 at real samples (Mescheder et al. 2018).

    To reuse the forward of the loss, pass ``logits = d(real)`` computed from a ``real``
    that requires grad; otherwise D is run here on a copy of ``real``. Under fp16 autocast
    pass ``grad_scale=scaler.get_scale()`` (every penalty here takes it: the PyTorch AMP
    recipe for gradient penalties)."""
    if logits is None:
        real = real.detach().requires_grad_(True)
        logits = d(real)
    return gamma * 0.5 * per_sample_sq_grad_norm(logits, real, grad_scale).mean()


def r2_penalty(d: Callable[[Tensor], Tensor], fake: Tensor, gamma: float = 10.0,
               logits: Tensor | None = None, grad_scale: float = 1.0) -> Tensor:
    """(gamma/2) E||grad_x D(x)||^2 at generated samples (Mescheder et al. 2018); ``logits`` as in r1."""
    return r1_penalty(d, fake, gamma, logits, grad_scale)


def wgan_gp_penalty(d: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, lam: float = 10.0,
                    grad_scale: float = 1.0) -> Tensor:
    """lambda E(||grad D(x_hat)|| - 1)^2 at per-sample random real/fake interpolates (Gulrajani et al. 2017)."""
    points = per_sample_mix(real.detach(), fake.detach())
    return lam * (_norm(per_sample_sq_grad_norm(d(points), points, grad_scale)) - 1).square().mean()


def zero_gp_penalty(d: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, lam: float = 10.0,
                    grad_scale: float = 1.0) -> Tensor:
    """lambda E||grad D(x_hat)||^2 at per-sample real/fake interpolates (Thanh-Tung et al. 2019)."""
    points = per_sample_mix(real.detach(), fake.detach())
    return lam * per_sample_sq_grad_norm(d(points), points, grad_scale).mean()


def dragan_penalty(d: Callable[[Tensor], Tensor], real: Tensor, lam: float = 10.0, scale: float = 0.5,
                   grad_scale: float = 1.0) -> Tensor:
    """lambda E(||grad D(x)|| - 1)^2 at points between real samples and real samples pushed
    up by up to ``scale`` standard deviations of the batch (Kodali et al. 2017, as the
    authors' code draws them)."""
    real = real.detach()
    # The data's spread and the uniform draw are those of the global batch across processes.
    noise = shard_of(lambda n: torch.empty((n,) + real.shape[1:], dtype=real.dtype, device=real.device,
                                           memory_format=_layout(real)).uniform_(), len(real))
    perturbed = real + scale * global_std(real) * noise
    points = per_sample_mix(real, perturbed)
    return lam * (_norm(per_sample_sq_grad_norm(d(points), points, grad_scale)) - 1).square().mean()


def param_grad_penalty(loss: Tensor, params: list[Tensor], lam: float = 1.0, grad_scale: float = 1.0) -> Tensor:
    """lambda ||grad_theta loss||^2: the GP-GAN document's penalty, added to the loss of the
    player whose parameters ``params`` are (a double backward when minimised)."""
    return lam * sq_param_grad_norm(loss, params, grad_scale)


def consensus_penalty(d_loss: Tensor, d_params: list[Tensor], g_loss: Tensor, g_params: list[Tensor],
                      gamma: float = 10.0, grad_scale: float = 1.0) -> Tensor:
    """(gamma/2)(||grad_D L_D||^2 + ||grad_G L_G||^2), added to both players' losses
    (Mescheder et al. 2017)."""
    return gamma * 0.5 * (sq_param_grad_norm(d_loss, d_params, grad_scale)
                          + sq_param_grad_norm(g_loss, g_params, grad_scale))


def nk_penalty(d_loss: Tensor, d_params: list[Tensor], eta: float = 0.5, grad_scale: float = 1.0) -> Tensor:
    """eta ||grad_D L_D||^2, added to the generator's loss (Nagarajan & Kolter 2017)."""
    return eta * sq_param_grad_norm(d_loss, d_params, grad_scale)


@PENALTIES.register("r1", summary="(gamma/2) E||grad D(x_real)||^2, zero-centred at real data",
                    paper="Mescheder et al. 2018, Which training methods for GANs do actually converge?")
class R1Penalty(Penalty):
    name = "r1"
    needs = frozenset({REAL_GRAD})
    weight_alias = "gamma"

    def value(self, inputs: PenaltyInputs) -> Tensor:
        assert inputs.real_logits is not None
        return r1_penalty(inputs.score, inputs.real, 1.0, logits=inputs.real_logits, grad_scale=inputs.grad_scale)


@PENALTIES.register("r2", summary="(gamma/2) E||grad D(x_fake)||^2, zero-centred at generated data",
                    paper="Mescheder et al. 2018")
class R2Penalty(Penalty):
    name = "r2"
    needs = frozenset({FAKE_GRAD})
    weight_alias = "gamma"

    def value(self, inputs: PenaltyInputs) -> Tensor:
        return r2_penalty(inputs.score, inputs.fake, 1.0, logits=inputs.fake_logits, grad_scale=inputs.grad_scale)


@PENALTIES.register("wgan-gp", summary="lambda E(||grad D(x_hat)|| - 1)^2 at per-sample real/fake interpolates",
                    paper="Gulrajani et al. 2017, Improved Training of Wasserstein GANs")
class WganGpPenalty(Penalty):
    name = "wgan-gp"
    weight_alias = "lambda"

    def value(self, inputs: PenaltyInputs) -> Tensor:
        return wgan_gp_penalty(inputs.score, inputs.real, inputs.fake, 1.0, grad_scale=inputs.grad_scale)


@PENALTIES.register("zero-gp", summary="lambda E||grad D(x_hat)||^2 at interpolates (zero-centred GP)",
                    paper="Thanh-Tung et al. 2019, Improving Generalization and Stability of GANs")
class ZeroGpPenalty(Penalty):
    name = "zero-gp"
    weight_alias = "lambda"

    def value(self, inputs: PenaltyInputs) -> Tensor:
        return zero_gp_penalty(inputs.score, inputs.real, inputs.fake, 1.0, grad_scale=inputs.grad_scale)


@PENALTIES.register("dragan", summary="lambda E(||grad D(x + delta)|| - 1)^2 around perturbed real data",
                    paper="Kodali et al. 2017, On Convergence and Stability of GANs")
class DraganPenalty(Penalty):
    name = "dragan"
    weight_alias = "lambda"

    def __init__(self, weight: float | None = None, every: int = 1, scale: float = 0.5) -> None:
        super().__init__(weight, every)
        if not scale > 0:
            raise ConfigError(f"penalty 'dragan': scale must be > 0 (got {scale})")
        self.scale = float(scale)

    def value(self, inputs: PenaltyInputs) -> Tensor:
        return dragan_penalty(inputs.score, inputs.real, 1.0, self.scale, grad_scale=inputs.grad_scale)


INPUT_GRADIENT_PENALTIES = ("r1", "r2", "wgan-gp", "zero-gp", "dragan")


# --- parameter-gradient penalties ----------------------------------------------------------

def sq_norm(grads: list[Tensor | None], device: torch.device) -> Tensor:
    """Squared L2 norm of a list of gradients (None entries count as zero)."""
    return sum((at_least_fp32(g).square().sum() for g in grads if g is not None), torch.zeros((), device=device))


def param_grads(loss: Tensor, params: list[Tensor], grad_scale: float = 1.0) -> list[Tensor | None]:
    """grad_params loss with its graph (None where the loss does not reach a parameter);
    ``grad_scale`` as in :func:`per_sample_sq_grad_norm`.

    Across processes this is the gradient of the *global* loss (the mean over ranks, see
    :func:`steadygan.core.collectives.global_mean`): the norm of a mean is not the mean of the
    per-rank norms, and the penalties built on it must mean what they mean in one process."""
    grads = torch.autograd.grad(loss * grad_scale, params, create_graph=True, allow_unused=True)
    grads = [g if g is None or grad_scale == 1.0 else at_least_fp32(g) / grad_scale for g in grads]
    return global_mean(grads)


def sq_param_grad_norm(loss: Tensor, params: list[Tensor], grad_scale: float = 1.0) -> Tensor:
    """||grad_params loss||^2 over all parameters, keeping the graph (double backward)."""
    return sq_norm(param_grads(loss, params, grad_scale), loss.device)


@PENALTIES.register("seed-param",
                    summary="the GP-GAN document's term: lambda ||grad_theta L||^2 of each player's own loss",
                    paper="GP-GAN source document, sec. 3.4 (cf. gradient-norm regularisation, Drucker & LeCun 1992)")
class SeedParamPenalty(Penalty):
    """The GP-GAN document's penalty, lambda * ||grad||^2 on the player's own parameters
    (:func:`param_grad_penalty`; here from :meth:`PenaltyInputs.own_loss_grads`, shared with
    consensus when both are due).

    Section 3.4 adds lambda ||grad G||^2 to the generator's loss and subtracts
    lambda ||grad D||^2 from the discriminator's *maximised* objective, i.e. both players
    minimise ``loss + lambda ||grad_theta loss||^2``. ``target="loss"`` (default) follows
    that formula. ``target="output"`` follows the document's code sketch instead, which
    differentiates the discriminator's mean output (on real data for D, on generated
    data for G) with respect to the updating player's parameters.
    """

    name = "seed-param"
    players = ("d", "g")
    weight_alias = "lambda"
    default_weight = 1.0

    def __init__(self, weight: float | None = None, every: int = 1, target: str = "loss") -> None:
        super().__init__(weight, every)
        if target not in ("loss", "output"):
            raise ConfigError(f"penalty 'seed-param': target must be 'loss' or 'output' (got {target!r})")
        self.target = target

    def value(self, inputs: PenaltyInputs) -> Tensor:
        if self.target == "loss":
            return sq_norm(inputs.own_loss_grads(), inputs.own_loss.device)
        if inputs.player == "d":
            assert inputs.real_logits is not None
            differentiated = inputs.real_logits.mean()
        else:
            differentiated = inputs.fake_logits.mean()
        return sq_param_grad_norm(differentiated, inputs.own_params, inputs.grad_scale)


@PENALTIES.register("consensus", summary="(gamma/2)(||grad_D L_D||^2 + ||grad_G L_G||^2) added to both players",
                    paper="Mescheder et al. 2017, The Numerics of GANs")
class ConsensusPenalty(Penalty):
    """Consensus optimisation: both players also descend on L = 1/2 ||v||^2
    (:func:`consensus_penalty`, with the updating player's half from
    :meth:`PenaltyInputs.own_loss_grads`).

    v is the joint vector field (each player's loss gradient on its own parameters). With
    alternating updates each player differentiates L with respect to its own parameters
    only, so the cross terms (how D's parameters move G's gradient) are what it adds.
    """

    name = "consensus"
    players = ("d", "g")
    needs = frozenset({D_LOSS, G_LOSS})
    weight_alias = "gamma"

    def value(self, inputs: PenaltyInputs) -> Tensor:
        assert inputs.d_loss is not None and inputs.g_loss is not None
        if inputs.player == "d":
            other = sq_param_grad_norm(inputs.g_loss, inputs.g_params, inputs.grad_scale)
        else:
            other = sq_param_grad_norm(inputs.d_loss, inputs.d_params, inputs.grad_scale)
        return 0.5 * (sq_norm(inputs.own_loss_grads(), other.device) + other)


@PENALTIES.register("nk", summary="generator loss + eta ||grad_D V||^2 (G sees how D's gradient moves)",
                    paper="Nagarajan & Kolter 2017, Gradient descent GAN optimization is locally stable")
class NagarajanKolterPenalty(Penalty):
    name = "nk"
    players = ("g",)
    needs = frozenset({D_LOSS})
    weight_alias = "eta"
    default_weight = 0.5

    def value(self, inputs: PenaltyInputs) -> Tensor:
        assert inputs.d_loss is not None
        return nk_penalty(inputs.d_loss, inputs.d_params, 1.0, grad_scale=inputs.grad_scale)


PARAMETER_GRADIENT_PENALTIES = ("seed-param", "consensus", "nk")


# --- diversity --------------------------------------------------------------------------------

def mode_seeking_penalty(fake: Tensor, other: Tensor, z: Tensor, other_z: Tensor, eps: float = 1e-5) -> Tensor:
    """1 / (mean |G(z1) - G(z2)| / mean |z1 - z2| + eps) (Mao et al. 2019, MSGAN): small when
    two noise vectors give samples as far apart as the noises are; large when G ignores its
    noise. The samples of a pair share their condition (class), so a conditional generator
    is pushed to vary within each class."""
    image_gap, noise_gap = global_mean([(fake - other).abs().mean(), (z - other_z).abs().mean()])
    return 1.0 / (image_gap / noise_gap + eps)


@PENALTIES.register("mode-seeking", summary="1 / (mean|G(z1)-G(z2)| / mean|z1-z2| + eps) on G: samples that "
                                            "vary with the noise, within each class",
                    paper="Mao et al. 2019, Mode Seeking Generative Adversarial Networks for Diverse Image Synthesis")
class ModeSeekingPenalty(Penalty):
    """:func:`mode_seeking_penalty` between this step's generated batch and a second one from
    fresh noise for the same labels (one more G forward; the noise is drawn for the global
    batch and sharded, as all noise is). Weight 1, as in the paper's code."""

    name = "mode-seeking"
    players = ("g",)
    needs = frozenset({SECOND_SAMPLE})
    default_weight = 1.0
    second_order = False

    def value(self, inputs: PenaltyInputs) -> Tensor:
        assert inputs.z is not None and inputs.generate is not None
        z = inputs.z
        other_z = shard_of(lambda n: torch.randn(n, *z.shape[1:], device=z.device, dtype=z.dtype), len(z))
        return mode_seeking_penalty(inputs.fake, inputs.generate(other_z), z, other_z)


def auxiliary_classifier_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of class ``logits`` (N, K) against ``labels`` (N,): AC-GAN's class term
    (Odena et al. 2017), averaged over the samples. A mean of per-sample terms: the gradient
    all-reduce of a distributed run already makes it the global batch's."""
    return torch.nn.functional.cross_entropy(at_least_fp32(logits), labels)


@PENALTIES.register("aux-classifier", summary="cross-entropy of D's class head: on real samples for D, on generated "
                                              "ones for G (draw samples the class head recognises)",
                    paper="Odena et al. 2017, Conditional Image Synthesis with Auxiliary Classifier GANs (AC-GAN)")
class AuxiliaryClassifierPenalty(Penalty):
    """AC-GAN's class term beside the projection head: D learns to classify real samples with
    a class head on its features; G is pushed to draw samples that head assigns to their
    class. D is not trained to classify generated samples (as the original AC-GAN does):
    that term rewards G for samples far from the class boundaries, the bias towards easy
    samples Shu et al. 2017 and Gong et al. 2019 (TAC-GAN) describe. Needs a class-
    conditional model; the class head is added to D when a config names this penalty."""

    name = "aux-classifier"
    players = ("d", "g")
    needs = frozenset({CLASS_LOGITS})
    default_weight = 1.0
    second_order = False

    def value(self, inputs: PenaltyInputs) -> Tensor:
        assert inputs.classify is not None and inputs.labels is not None
        samples = inputs.real if inputs.player == "d" else inputs.fake
        return auxiliary_classifier_loss(inputs.classify(samples), inputs.labels)


def mean_abs_difference(a: Tensor, b: Tensor) -> Tensor:
    """mean |a - b| over every element, in fp32 or wider: the L1 terms of translation (pix2pix's
    to each target, CycleGAN's cycle back to each input and its identity)."""
    return (at_least_fp32(a) - at_least_fp32(b)).abs().mean()


@PENALTIES.register("cycle", summary="mean |G(G(u)) - u| on G: a -> b -> a and b -> a -> b come back to their start "
                                    "(cyclegan models; weight 10)",
                    paper="Zhu et al. 2017, Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial "
                          "Networks (CycleGAN)")
class CyclePenalty(Penalty):
    """mean |G(G(u)) - u| (Zhu et al. 2017): this step's translation translated back, both
    directions at once (a -> b -> a, b -> a -> b; one more G forward,
    through which both generators learn). Weight 10, the paper's lambda: the mean over both
    slots beside a G loss averaged over both discriminators keeps the paper's ratio."""

    name = "cycle"
    players = ("g",)
    needs = frozenset({TRANSLATE})
    weight_alias = "lambda"
    default_weight = 10.0
    second_order = False

    def value(self, inputs: PenaltyInputs) -> Tensor:
        assert inputs.translate is not None
        return mean_abs_difference(inputs.translate(inputs.fake), inputs.real)  # real sample = input, on joint samples


@PENALTIES.register("identity", summary="mean |G_AB(b) - b| and |G_BA(a) - a| on G: an image already in the target "
                                       "domain is left as it is (cyclegan models; weight 5)",
                    paper="Zhu et al. 2017 (CycleGAN), after Taigman et al. 2017")
class IdentityPenalty(Penalty):
    """CycleGAN's identity term: each generator given an image of its own target domain (the
    joint sample with its slots swapped) should return it. Weight 5, the paper's 0.5 x lambda."""

    name = "identity"
    players = ("g",)
    needs = frozenset({TRANSLATE})
    default_weight = 5.0
    second_order = False

    def value(self, inputs: PenaltyInputs) -> Tensor:
        assert inputs.translate is not None
        # on joint samples the real sample is the input
        return mean_abs_difference(inputs.translate(swap_domains(inputs.real)), inputs.real)


def l1_target_penalty(fake: Tensor, target: Tensor) -> Tensor:
    """mean |G(z, a) - b| over pixels and samples: pix2pix's L1 term (Isola et al. 2017), which
    pulls each translated image towards its input's own target while the adversarial loss keeps
    it sharp."""
    return mean_abs_difference(fake, target)


@PENALTIES.register("l1-target", summary="mean |G(z, a) - b| on G: paired translation's L1 term to each input's "
                                         "own target", paper="Isola et al. 2017, Image-to-Image Translation with "
                                                             "Conditional Adversarial Networks (pix2pix)")
class L1TargetPenalty(Penalty):
    """:func:`l1_target_penalty` between this step's translations and the batch's targets; only
    for paired data, where the batch's real sample i is the target of condition i. Weight
    (lambda) 100, as in the paper."""

    name = "l1-target"
    players = ("g",)
    needs = frozenset({PAIRED_TARGET})
    weight_alias = "lambda"
    default_weight = 100.0
    second_order = False

    def value(self, inputs: PenaltyInputs) -> Tensor:
        return l1_target_penalty(inputs.fake, inputs.real)


# --- output regularisers -------------------------------------------------------------------

def lecam_penalty(real_logits: Tensor, fake_logits: Tensor, ema_real: Tensor | float, ema_fake: Tensor | float,
                  lam: float = 0.3, two_sided: bool = False) -> Tensor:
    """lambda (E[relu(D(x) - ema_fake)^2] + E[relu(ema_real - D(G(z)))^2]) (Tseng et al. 2021):
    D's outputs on real data are held near the moving average of its outputs on generated
    data and vice versa, which bounds how far D can separate a small training set. The
    paper's equation squares the plain differences (``two_sided=True``); its authors' code
    penalises only outputs that overshoot the opposite average (the default here)."""
    real_gap, fake_gap = real_logits - ema_fake, ema_real - fake_logits
    if not two_sided:
        real_gap, fake_gap = real_gap.relu(), fake_gap.relu()
    return lam * (real_gap.square().mean() + fake_gap.square().mean())


@PENALTIES.register("lecam", summary="lambda (E[relu(D(x_real) - ema D(fake))^2] + E[relu(ema D(real) - "
                                     "D(x_fake))^2]) (two_sided: without relu); for limited data",
                    paper="Tseng et al. 2021, Regularizing Generative Adversarial Networks under Limited Data")
class LeCamPenalty(Penalty):
    """:func:`lecam_penalty` with the two moving averages kept here (decay 0.99, from 0),
    updated after each use with the batch's mean logits (the global batch's, across
    processes) and saved in checkpoints."""

    name = "lecam"
    weight_alias = "lambda"
    default_weight = 0.3
    second_order = False  # a function of the logits alone

    def __init__(self, weight: float | None = None, every: int = 1, decay: float = 0.99,
                 two_sided: bool = False) -> None:
        super().__init__(weight, every)
        if not 0 <= decay < 1:
            raise ConfigError(f"penalty 'lecam': decay must be in [0, 1) (got {decay})")
        if not isinstance(two_sided, bool):
            raise ConfigError(f"penalty 'lecam': two_sided must be true or false (got {two_sided!r})")
        self.decay, self.two_sided = float(decay), bool(two_sided)
        self.ema_real, self.ema_fake = 0.0, 0.0

    def value(self, inputs: PenaltyInputs) -> Tensor:
        assert inputs.real_logits is not None
        value = lecam_penalty(inputs.real_logits, inputs.fake_logits, self.ema_real, self.ema_fake, 1.0,
                              self.two_sided)
        # Kept as tensors on D's device: no host sync per step.
        (means,) = global_mean([torch.stack([inputs.real_logits.detach().mean(), inputs.fake_logits.detach().mean()])])
        self.ema_real = self.decay * self.ema_real + (1 - self.decay) * means[0]
        self.ema_fake = self.decay * self.ema_fake + (1 - self.decay) * means[1]
        return value

    def state_dict(self) -> dict[str, Any]:
        return {"ema_real": float(self.ema_real), "ema_fake": float(self.ema_fake)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema_real, self.ema_fake = float(state["ema_real"]), float(state["ema_fake"])


def build_penalty(spec: dict, player: str) -> Penalty:
    """Build one penalty from ``{"name": ..., **options}`` for player "d" or "g"."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name is None:
        raise ConfigError(f"a {player} penalty needs a name; choose from: {', '.join(PENALTIES.names())}")
    cls = PENALTIES.get(name).factory
    alias = getattr(cls, "weight_alias", "weight")
    if alias != "weight" and alias in spec:
        if "weight" in spec:
            raise ConfigError(f"penalty '{name}': give either weight or {alias}, not both")
        spec["weight"] = spec.pop(alias)
    penalty = PENALTIES.build(name, **spec)
    if player not in penalty.players:
        who = {"d": "the discriminator", "g": "the generator"}
        raise ConfigError(
            f"penalty '{name}' cannot be attached to {who[player]}; it applies to "
            f"{' and '.join(who[p] for p in penalty.players)}"
        )
    return penalty
