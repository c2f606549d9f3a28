"""Which fast paths of the step a pair of networks can take (ARCHITECTURE: "The fast step").

The layout and the fused forward are decided on the networks themselves, once, before
training, on a few real samples in eval mode (no BatchNorm statistics move, no dropout) and
with noise from a generator of their own (the training RNG does not move): the built-in
architectures pass by construction, and a user's networks either pass or keep the plain path
with a warning. Compilation (``train.compile``) is the user's choice, refused (by config
validation) only with penalties it cannot run.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..core.augment import AugmentedDiscriminator
from ..core.pair import call, has_batch_coupling
from ..core.step import Player


def _outputs(G: nn.Module, D: nn.Module, z: Tensor, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
    return call(G, z, y), call(D, x, y)


def _close(a: Tensor, b: Tensor) -> bool:
    # Other kernels sum in another order: about 1e-6 of the values' scale apart, where a
    # layout or coupling error is of the order of the values themselves.
    return a.shape == b.shape and bool(((a - b).abs().max() <= 1e-4 * (1 + b.abs().max())).item())


@torch.no_grad()
def to_channels_last(G: nn.Module, D: nn.Module, z: Tensor, x: Tensor, y: Tensor | None) -> bool:
    """Convert both networks to channels-last (NHWC) in place if they compute the same in
    it; otherwise leave them channels-first, warn, and return False. A network that calls
    ``.view`` on a convolution's output, for one, fails in channels-last."""
    modes = G.training, D.training
    G.eval(), D.eval()
    try:
        before = _outputs(G, D, z, x, y)
        G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        try:
            after = _outputs(G, D, z, x.contiguous(memory_format=torch.channels_last), y)
            problem = None if all(map(_close, after, before)) else "they compute other values in it"
        except RuntimeError as exc:
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        if problem is not None:
            G.to(memory_format=torch.contiguous_format), D.to(memory_format=torch.contiguous_format)
            warnings.warn(f"train.channels_last: the networks do not work in channels-last layout ({problem}); "
                          "training them channels-first (set train.channels_last=false to silence this)",
                          stacklevel=3)
            return False
        return True
    finally:
        G.train(modes[0]), D.train(modes[1])


@torch.no_grad()
def can_fuse_real_and_fake(D: nn.Module, x: Tensor, y: Tensor | None) -> bool:
    """True if D scores each sample independently of the rest of its batch, so one forward
    over real and fake together gives the two forwards' logits. Not with BatchNorm, nor with
    spectral norm or another parametrisation (its power iteration runs once per forward:
    one fused forward would be one iteration where two forwards are two), nor when
    ``D(a ++ b)`` differs from ``D(a) ++ D(b)`` on real samples (a minibatch-stddev layer)."""
    if has_batch_coupling(D) or any(parametrize.is_parametrized(m) for m in D.modules()):
        return False
    was_training = D.training
    D.eval()
    try:
        half = len(x) // 2
        parts = [call(D, x[:half], None if y is None else y[:half]), call(D, x[half:], None if y is None else y[half:])]
        return _close(call(D, x, y), torch.cat(parts))
    finally:
        D.train(was_training)


# torch.compile modes that replay CUDA graphs (torch's mode table: reduce-overhead, and
# max-autotune, which also autotunes kernels).
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def compile_players(d: Player, g: Player, mode: str) -> None:
    """torch.compile the networks the step calls, in the players' references (``Player.net``)
    only: the modules themselves, which checkpoints, sample grids, the EMA and evaluation
    use, stay eager, so their state_dict keys do not change and sampling triggers no
    compilation. Shapes are static (``dynamic=False``): the step calls each network at two or
    three fixed batch sizes (N, and 2N for a fused D forward), each compiled once.

    An augmented D is compiled inside its augmentation, which stays eager: ADA's probability
    is a Python number that changes every few updates, and each change would recompile.
    Penalties that differentiate a gradient are refused earlier, by config validation."""
    # One process may build several trainers (compare, notebooks). Compiled code is cached
    # per forward method, shared between them: past torch's recompile limit (8) a network
    # runs eager, silently. Starting each trainer from an empty cache avoids that.
    torch._dynamo.reset()

    def compiled(net: nn.Module) -> nn.Module:
        return torch.compile(net, mode=mode, dynamic=False)

    g.net = compiled(g.net)
    if isinstance(d.net, AugmentedDiscriminator):
        d.net = AugmentedDiscriminator(compiled(d.net.discriminator), d.net.augment, d.net.paired, d.net.slots)
    else:
        d.net = compiled(d.net)
