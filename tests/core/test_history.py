"""The history of generated images D is shown (CycleGAN's pool): filling, swapping with
probability one half, nothing lost or made up, and a saved pool that continues as the unbroken
one does."""

from __future__ import annotations

import pytest
import torch

from steadygan.core.history import FakeHistory


def _batch(start, n=4):
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()


def _ids(images):
    return [int(v) for v in images[:, 0, 0, 0]]


def test_while_the_pool_fills_d_sees_this_steps_images():
    pool = FakeHistory(6, seed=0)
    assert torch.equal(pool.query(_batch(0)), _batch(0))
    out = pool.query(_batch(4))  # 2 of these fill the pool; the other 2 may already swap
    assert _ids(out)[:2] == [4, 5] and pool.filled == 6


def test_a_full_pool_returns_each_new_image_or_a_stored_one_it_replaces_about_half_the_time():
    pool = FakeHistory(10, seed=1)
    pool.query(_batch(0, 10))
    stored, swaps, seen = set(range(10)), 0, 0
    for step in range(1, 201):
        new = _batch(100 * step)
        out = _ids(pool.query(new))
        for i, image in zip(_ids(new), out):
            seen += 1
            if image != i:  # a stored image came out, and the new one took its place
                assert image in stored
                stored.remove(image)
                stored.add(i)
                swaps += 1
        assert stored == set(_ids(pool.images))  # nothing lost, nothing made up
    # 800 fair coins: the share of swaps is 0.5 within 4.5 standard deviations (0.079 / 2)
    assert abs(swaps / seen - 0.5) < 4.5 * (0.25 / seen) ** 0.5


def test_a_saved_pool_goes_on_as_the_unbroken_one():
    straight, first = FakeHistory(5, seed=3), FakeHistory(5, seed=3)
    for step in range(3):
        straight.query(_batch(10 * step))
        first.query(_batch(10 * step))
    resumed = FakeHistory(5, seed=99)  # a different seed: the saved stream must replace it
    resumed.load_state_dict(first.state_dict())
    for step in range(3, 8):
        assert torch.equal(resumed.query(_batch(10 * step)), straight.query(_batch(10 * step)))
    with pytest.raises(ValueError, match="holds 5 images, the run's 4"):
        FakeHistory(4, seed=0).load_state_dict(first.state_dict())


def test_the_pool_draws_from_its_own_stream_not_the_global_one():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    pool = FakeHistory(2, seed=0)
    for step in range(5):
        pool.query(_batch(4 * step))
    assert torch.equal(torch.get_rng_state(), before)
