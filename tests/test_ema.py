"""The generator EMA: warm-up decay and BatchNorm statistics recomputed for the averaged weights."""

from __future__ import annotations

import torch
from torch import nn

from steadygan.ema import Ema


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
