"""A history of generated images for the discriminator (Shrivastava et al. 2017), as CycleGAN
uses it (Zhu et al. 2017, pool of 50): D is shown, for each generated image, either that image
or, with probability one half once the pool is full, an older one it replaces. D then learns
against what G drew over the last several steps, not only now, which damps the two players
chasing each other.

Hand-written rather than taken from CycleGAN's code: the pool must be checkpointed (its
images, its fill, its own random stream) so that a resumed run draws what the unbroken run
would, and the draws must not touch the global RNG the rest of the step uses. In a
distributed run the pool is of the global batch, the same on every rank (each gathers the
others' images, draws from the same stream and keeps its own shard): what one process would
show D, and what rank 0's checkpoint holds for every rank.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .collectives import chunk_bounds, gather_shards, rank, world_size


class FakeHistory:
    """The pool of up to ``size`` generated images and the random stream that picks from it."""

    def __init__(self, size: int, seed: int) -> None:
        if size < 1:
            raise ValueError(f"a history holds at least one image (got {size})")
        self.size = size
        self.images: Tensor | None = None  # (size, ...) on the generated images' device
        self.filled = 0
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def query(self, fake: Tensor) -> Tensor:
        """What D sees in place of this rank's ``fake`` (detached): each image as it is while
        the pool fills; then, each with probability 1/2, a stored image, which ``fake``'s image
        replaces."""
        shard = fake.detach()
        fake = gather_shards(shard)
        if self.images is None:
            self.images = torch.empty(self.size, *fake.shape[1:], dtype=fake.dtype, device=fake.device)
        elif self.images.device != fake.device:  # loaded from a checkpoint, on the host
            self.images = self.images.to(fake.device)
        out = fake.clone()
        coins = torch.rand(len(fake), generator=self.generator)
        slots = torch.randint(self.size, (len(fake),), generator=self.generator)
        for i in range(len(fake)):  # in order: an image stored now may be drawn for a later one
            if self.filled < self.size:
                self.images[self.filled] = fake[i]
                self.filled += 1
            elif coins[i] < 0.5:
                j = int(slots[i])
                out[i] = self.images[j]
                self.images[j] = fake[i]
        if world_size() == 1:
            return out
        start, stop = chunk_bounds(len(out), rank(), world_size())
        return out[start:stop]

    def state_dict(self) -> dict[str, Any]:
        images = None if self.images is None else self.images[:self.filled].cpu()
        return {"size": self.size, "images": images, "filled": self.filled, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["size"] != self.size:
            raise ValueError(f"this checkpoint's history holds {state['size']} images, the run's {self.size}")
        self.filled, self.images = int(state["filled"]), None
        self.generator.set_state(state["rng"])
        if state["images"] is not None and self.filled:
            stored = state["images"]
            self.images = torch.empty(self.size, *stored.shape[1:], dtype=stored.dtype)
            self.images[:self.filled] = stored
