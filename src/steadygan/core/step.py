"""One discriminator update and one generator update: the whole algorithm, no I/O.

    d_step: D(real), D(G(z)) -> D loss + due penalties -> backward into D only
            -> sync point -> clip -> optimiser step -> weight clip
    g_step: D(G(z)) -> G loss + due penalties -> backward into G only -> (same tail)

With ``fake=`` both take a batch G already generated this iteration: one generator forward
then serves the D update (detached) and the G update (through its graph), as hand-written
GAN loops do. A discriminator without batch coupling (``Player.fused_forward``) scores
real and generated samples in one forward over both, split afterwards.

Both take a :class:`~steadygan.core.batch.Batch` (or a bare tensor of real samples). When it
carries labels, G draws its samples for those labels and D scores real and generated
samples against them; the penalties get D already bound to the labels.

Each update back-propagates into the updating player's parameters only
(``backward(inputs=...)``), which is how the idle network is frozen: its gradients are
neither computed nor accumulated, and no ``requires_grad`` flags are toggled.
Returned stats are detached tensors; the trainer converts them to numbers in batches, so
there is no host sync per step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
from torch import Tensor, nn

from .batch import Batch, as_batch
from .clipping import Clipper
from .collectives import all_reduce_mean_
from .losses import AdversarialLoss
from .pair import bind, call
from .penalties import (
    CLASS_LOGITS,
    D_LOSS,
    FAKE_GRAD,
    G_LOSS,
    REAL_GRAD,
    SECOND_SAMPLE,
    TRANSLATE,
    Penalty,
    PenaltyInputs,
    at_least_fp32,
)

Stats = dict[str, Tensor]


@dataclass
class Player:
    """One side of the game: its network and everything that updates it."""

    tag: str                       # "D" or "G", used in stat names
    net: nn.Module
    optimizer: torch.optim.Optimizer
    penalties: list[Penalty]
    clipper: Clipper
    fused_forward: bool = False    # D only: one forward over real and fake (no batch coupling in D)
    scaler: torch.amp.GradScaler | None = None  # fp16 autocast: scales the backward, skips non-finite steps

    @property
    def grad_scale(self) -> float:
        """The scale inner gradients (penalties) are taken at: the scaler's, else 1."""
        return 1.0 if self.scaler is None else self.scaler.get_scale()

    @property
    def params(self) -> list[Tensor]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def __call__(self, inputs: Tensor, y: Tensor | None = None) -> Tensor:
        return call(self.net, inputs, y)


def sync_gradients(params: list[Tensor]) -> None:
    """The point where gradients are final: average them across processes.

    Here, after ``backward`` has added every penalty's term (second-order ones included)
    and before clipping, so that clippers and the optimiser see the global gradient. A DDP
    wrapper's bucketed hooks, which fire during the backward, would miss those terms. One
    flattened all-reduce per update; a no-op in a single process.
    """
    all_reduce_mean_([p.grad for p in params if p.grad is not None])


def _score_real_and_fake(d: Player, y: Tensor | None, real: Tensor, fake: Tensor,
                         input_grads: bool) -> tuple[Tensor, Tensor]:
    """D's logits on both halves. Fused, the two halves go through D as one batch of 2N
    (one call per layer instead of two); without batch coupling each sample's logit is
    the same either way, up to float rounding. Not fused when R1 or R2 differentiates
    these logits with respect to one half: through a fused graph that inner gradient and
    its double backward would run over all 2N samples."""
    if d.fused_forward and not input_grads:
        both = call(d.net, torch.cat([real, fake]), None if y is None else torch.cat([y, y]))
        real_logits, fake_logits = at_least_fp32(both).split([len(real), len(fake)])
        return real_logits, fake_logits
    score = bind(d.net, y)
    return at_least_fp32(score(real)), at_least_fp32(score(fake))


def _penalty_terms(due: list[Penalty], inputs: PenaltyInputs, stats: Stats, tag: str) -> Tensor | float:
    total: Tensor | float = 0.0
    for penalty in due:
        value = penalty.value(inputs)
        stats[f"Penalty/{tag}/{penalty.name}"] = value.detach()
        total = total + (penalty.weight * penalty.gain) * value  # lazy: gain = every
    return total


def _update(player: Player, loss: Tensor, penalty: Tensor | float, stats: Stats) -> Stats:
    params, scaler = player.params, player.scaler
    player.optimizer.zero_grad(set_to_none=True)
    objective = loss + penalty
    (objective if scaler is None else scaler.scale(objective)).backward(inputs=params)
    sync_gradients(params)
    if scaler is not None:
        scaler.unscale_(player.optimizer)  # clippers see true gradients
    clip = player.clipper.clip_(params)
    if scaler is None:
        player.optimizer.step()
        stats[f"Grad/{player.tag}/norm"] = clip.grad_norm.detach()
    else:
        scale = scaler.get_scale()
        scaler.step(player.optimizer)  # skipped when a gradient is inf/NaN: fp16 overflow, not divergence
        scaler.update()
        new_scale = scaler.get_scale()
        skipped = new_scale < scale  # the scale is lowered exactly when the step was skipped
        stats[f"AMP/{player.tag}/scale"] = torch.tensor(scale)
        stats[f"AMP/{player.tag}/skipped"] = torch.tensor(float(skipped))
        if skipped:
            # Gradients (and penalties' inner gradients) overflowed fp16 at this scale: the
            # scaler retries at half of it, and these inf values would read as divergence.
            # Losses come from fp32 logits and stay: a non-finite loss still stops the run,
            # and so does a scale driven below 1 (gradients overflow even unscaled).
            for key in [k for k in stats if k.startswith("Penalty/")]:
                del stats[key]
        if not skipped or new_scale < 1.0:
            stats[f"Grad/{player.tag}/norm"] = clip.grad_norm.detach()
    weights_clipped = player.clipper.after_step_(params)
    stats[f"Grad/{player.tag}/clipped"] = clip.clipped if weights_clipped is None else weights_clipped
    return stats


def _class_inputs(needs: frozenset[str], d: Player, batch: Batch) -> dict:
    """The batch's labels and D's class head, for a penalty that classifies samples."""
    if CLASS_LOGITS not in needs:
        return {}
    # A compiled D forwards attribute lookups to its module.
    if getattr(d.net, "class_head", None) is None or batch.y is None:
        raise ValueError("a due penalty classifies samples: it needs a class-conditional D with a class head "
                         "and a labelled batch")
    return {"labels": batch.y, "classify": d.net.classify}


def d_step(d: Player, g: Player, loss: AdversarialLoss, batch: Batch | Tensor, z: Tensor, step: int,
           autocast: Callable[[], ContextManager] = contextlib.nullcontext, fake: Tensor | None = None) -> Stats:
    """One discriminator update; ``step`` counts D updates (for lazy penalties). ``fake``: a
    batch G generated from ``z`` this iteration, shared with the G update (it is detached
    here; a due penalty that needs G's loss needs its own forward and cannot take it)."""
    batch = as_batch(batch)
    due = [p for p in d.penalties if p.due(step)]
    needs = frozenset().union(*(p.needs for p in due))
    if fake is not None and G_LOSS in needs:
        raise ValueError("a penalty due in this D step differentiates G's loss: generate its fake batch "
                         "in the step (fake=None)")
    score = bind(d.net, batch.y)  # D(., y): real and generated samples share the batch's labels
    with autocast():
        if fake is not None:
            fake = fake.detach()
        elif G_LOSS in needs:  # consensus differentiates G's gradient too: keep G's graph
            fake = g(z, batch.y)
        else:
            with torch.no_grad():
                fake = g(z, batch.y)
        if FAKE_GRAD in needs and not fake.requires_grad:
            fake.requires_grad_(True)
        real = batch.x
        if REAL_GRAD in needs:  # share this forward with R1 instead of a second pass
            real = real.detach().requires_grad_(True)
        real_logits, fake_logits = _score_real_and_fake(d, batch.y, real, fake, bool(needs & {REAL_GRAD, FAKE_GRAD}))
        d_loss = loss.d_loss(real_logits, fake_logits)
        g_loss = loss.generator(fake_logits, real_logits) if G_LOSS in needs else None
        # Logits/real_sign: E[sign D(real)], ADA's overfitting signal (1: D calls every real sample real);
        # with Logits/fake_sign, D's accuracy on each side (the health monitor's D-wins signal).
        stats: Stats = {"Loss/D": d_loss.detach(), "Logits/real": real_logits.detach().mean(),
                        "Logits/real_sign": real_logits.detach().sign().mean(),
                        "Logits/fake": fake_logits.detach().mean(),
                        "Logits/fake_sign": fake_logits.detach().sign().mean()}
        inputs = PenaltyInputs(player="d", score=score, d_params=d.params, g_params=g.params, real=real, fake=fake,
                               real_logits=real_logits, fake_logits=fake_logits, d_loss=d_loss, g_loss=g_loss,
                               grad_scale=d.grad_scale, **_class_inputs(needs, d, batch))
        penalty = _penalty_terms(due, inputs, stats, d.tag)
    return _update(d, d_loss, penalty, stats)


def g_step(g: Player, d: Player, loss: AdversarialLoss, batch: Batch | Tensor, z: Tensor, step: int,
           autocast: Callable[[], ContextManager] = contextlib.nullcontext, fake: Tensor | None = None) -> Stats:
    """One generator update; the batch's samples are used only by penalties that need
    D's loss and by a loss that pairs samples (relativistic), its labels (if any) are the
    classes G generates. ``fake``: G's batch from
    ``z``, generated this iteration with its graph (then G is not run again)."""
    batch = as_batch(batch)
    due = [p for p in g.penalties if p.due(step)]
    needs = frozenset().union(*(p.needs for p in due))
    score = bind(d.net, batch.y)
    with autocast():
        if fake is None:
            fake = g(z, batch.y)
        fake_logits = at_least_fp32(score(fake))
        real_logits = d_loss = None
        if D_LOSS in needs:  # nk, consensus: the discriminator's loss at this G
            real_logits = at_least_fp32(score(batch.x))
            d_loss = loss.d_loss(real_logits, fake_logits)
        elif loss.pairs_samples:  # G's loss compares with D(real), a constant for G: no graph
            with torch.no_grad():
                real_logits = at_least_fp32(score(batch.x))
        g_loss = loss.generator(fake_logits, real_logits)
        stats: Stats = {"Loss/G": g_loss.detach()}
        inputs = PenaltyInputs(player="g", score=score, d_params=d.params, g_params=g.params, real=batch.x,
                               fake=fake, real_logits=real_logits, fake_logits=fake_logits, d_loss=d_loss,
                               g_loss=g_loss, grad_scale=g.grad_scale, z=z,
                               generate=(lambda other: g(other, batch.y)) if SECOND_SAMPLE in needs else None,
                               translate=(lambda inputs: g(z, inputs)) if TRANSLATE in needs else None,
                               **_class_inputs(needs, d, batch))
        penalty = _penalty_terms(due, inputs, stats, g.tag)
    return _update(g, g_loss, penalty, stats)
