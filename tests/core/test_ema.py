"""The generator EMA: warm-up decay and BatchNorm statistics recomputed for the averaged weights."""

from __future__ import annotations

import torch
from torch import nn

from steadygan.core.ema import Ema


def small_generator() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def counting(ema: Ema) -> list[int]:
    calls: list[int] = []
    ema.model[0].register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_batch_stats_are_recomputed_only_after_the_weights_change():
    G = small_generator()
    ema = Ema(G, decay=0.9, z_dim=4)
    calls = counting(ema)
    ema.refresh_batch_stats(batches=3)
    assert len(calls) == 3
    ema.refresh_batch_stats(batches=3)  # same weights: nothing to redo
    assert len(calls) == 3
    with torch.no_grad():
        G[0].weight.add_(1.0)
    ema.update(G, step=100)
    ema.refresh_batch_stats(batches=3)
    assert len(calls) == 6
    ema.load_state_dict(ema.model.state_dict())  # loaded weights: statistics unknown again
    ema.refresh_batch_stats(batches=3)
    assert len(calls) == 9


def test_skipped_refresh_leaves_what_a_full_refresh_would_compute():
    G = small_generator()
    kept, again = Ema(G, 0.9, 4), Ema(G, 0.9, 4)
    for ema in (kept, again):
        ema.update(G, step=5)
        ema.refresh_batch_stats()
    kept.refresh_batch_stats()  # skipped
    again._stats_stale = True
    again.refresh_batch_stats()  # recomputed from scratch
    bn_kept, bn_again = kept.model[1], again.model[1]
    assert torch.equal(bn_kept.running_mean, bn_again.running_mean)
    assert torch.equal(bn_kept.running_var, bn_again.running_var)
    assert not torch.equal(bn_kept.running_mean, G[1].running_mean)  # not the raw generator's copy


def test_decay_warms_up_to_its_target():
    ema = Ema(small_generator(), decay=0.999, z_dim=4)
    assert ema.decay_at(0) == 0.1 and ema.decay_at(10) == 11 / 20 and ema.decay_at(10**6) == 0.999


def test_update_is_the_weighted_average_computed_by_hand():
    G = small_generator()
    ema = Ema(G, decay=0.9, z_dim=4)
    start = [p.detach().clone() for p in G.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
        G[1].running_mean.fill_(3.0)
    moved = [p.detach().clone() for p in G.parameters()]
    ema.update(G, step=100)  # decay_at(100) = min(0.9, 101/110) = 0.9
    for e, a, b in zip(ema.model.parameters(), start, moved):
        assert torch.allclose(e, 0.9 * a + 0.1 * b, rtol=0, atol=1e-6)
    assert torch.equal(ema.model[1].running_mean, G[1].running_mean)  # buffers copied, not averaged
    ema.update(G, step=0)  # warm-up: decay_at(0) = 0.1, so the EMA moves 90% of the way
    for e, a, b in zip(ema.model.parameters(), start, moved):
        first = 0.9 * a + 0.1 * b
        assert torch.allclose(e, 0.1 * first + 0.9 * b, rtol=0, atol=1e-6)


def test_the_average_is_a_frozen_copy():
    G = small_generator()
    ema = Ema(G, decay=0.9, z_dim=4)
    assert all(not p.requires_grad for p in ema.model.parameters()) and not ema.model.training
    assert all(p.requires_grad for p in G.parameters())  # the raw generator is left trainable
