"""One training iteration: ``n_critic`` discriminator updates, then one generator update.

The arithmetic of each update is ``steadygan.core.step``'s; this module decides which batch
and noise each update gets on this rank: its slice of the global batch (every epoch split
across ranks), noise drawn for the global batch and sharded, with ``train.share_fake`` one
generator forward shared by the D and the G update, and with ``train.fake_history`` D shown
a history of generated images (core/history.py).
"""

from __future__ import annotations

import torch

from ..core.batch import Batch
from ..core.collectives import shard_of
from ..core.penalties import G_LOSS
from ..core.step import d_step, g_step
from .build import RunParts
from .fast_paths import CUDA_GRAPH_MODES

Stats = dict[str, torch.Tensor]


class Iteration:
    """Calls the D and G steps of one iteration with this rank's batches and noise."""

    def __init__(self, parts: RunParts) -> None:
        t = parts.cfg.train
        self.d, self.g, self.loss, self.augment = parts.d, parts.g, parts.loss, parts.augment
        self.data, self.sampler, self.ctx, self.device = parts.data, parts.sampler, parts.ctx, parts.device
        self.autocast, self.conditional, self.translates = parts.autocast, parts.pair.conditional, parts.pair.translates
        self.batch_size, self.z_dim = parts.cfg.data.batch_size, parts.cfg.model.z_dim
        self.n_critic, self.share_fake, self.cuda_graphs = t.n_critic, t.share_fake, t.compile in CUDA_GRAPH_MODES
        self.history = parts.history

    def real_batch(self) -> Batch:
        """This rank's slice of the global batch (the whole batch in one process)."""
        index, b = self.sampler.next_index(), self.batch_size
        return self.data.batch(index[self.ctx.rank * b:(self.ctx.rank + 1) * b], labels=self.conditional,
                               conditions=self.translates)

    def noise(self) -> torch.Tensor:
        return shard_of(lambda n: torch.randn(n, self.z_dim, device=self.device), self.batch_size)

    def shares_fake(self, d_updates: int) -> bool:
        """One G forward serves this iteration's D and G updates (config validation allows
        share_fake only with n_critic=1), unless a D penalty due now differentiates G's loss
        (consensus)."""
        return self.share_fake and not any(G_LOSS in p.needs and p.due(d_updates) for p in self.d.penalties)

    def __call__(self, step: int, d_updates: int) -> tuple[Stats, int]:
        """The stats of G update number ``step`` and the D updates before it; returns them and
        the number of D updates done after them."""
        stats: Stats = {}
        if self.cuda_graphs:
            # CUDA graphs reuse their output memory from one replay to the next: say where an
            # iteration begins, so that none of its outputs is taken for the previous one's.
            torch.compiler.cudagraph_mark_step_begin()
        if self.shares_fake(d_updates):
            batch, z = self.real_batch(), self.noise()
            with self.autocast():
                fake = self.g(z, batch.y)  # with its graph: the G update back-propagates through it
            shown = fake if self.history is None else self.history.query(fake)
            stats.update(d_step(self.d, self.g, self.loss, batch, z, d_updates, self.autocast, fake=shown))
            d_updates = self._after_d_update(stats, d_updates)
            stats.update(g_step(self.g, self.d, self.loss, batch, z, step, self.autocast, fake=fake))
            return stats, d_updates
        for _ in range(self.n_critic):
            batch, z = self.real_batch(), self.noise()
            stats.update(d_step(self.d, self.g, self.loss, batch, z, d_updates, self.autocast,
                                fake=self._from_history(batch, z, d_updates)))
            d_updates = self._after_d_update(stats, d_updates)
        # The G step reuses the last batch: its labels (if any) are the classes G draws, and
        # its samples are read only by penalties that need D's loss.
        stats.update(g_step(self.g, self.d, self.loss, batch, self.noise(), step, self.autocast))
        return stats, d_updates

    def _from_history(self, batch: Batch, z: torch.Tensor, d_updates: int) -> torch.Tensor | None:
        """With a history: this D update's generated batch, as the history gives it (None:
        the D step generates its own). A due D penalty that differentiates G's loss needs G's
        graph in the D step, which no stored image has: then D sees this step's batch."""
        if self.history is None or any(G_LOSS in p.needs and p.due(d_updates) for p in self.d.penalties):
            return None
        with torch.no_grad(), self.autocast():
            return self.history.query(self.g(z, batch.y))

    def _after_d_update(self, stats: Stats, d_updates: int) -> int:
        if self.augment is not None:
            self.augment.observe(stats["Logits/real_sign"], self.batch_size * self.ctx.world_size)
            stats["Augment/p"] = torch.tensor(self.augment.p)
        return d_updates + 1
