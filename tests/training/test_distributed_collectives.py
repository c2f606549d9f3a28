"""The collectives of distributed.py against closed forms, in two gloo processes started from
the test (torch.multiprocessing, so the processes import the same steadygan as the test), and
the single-process paths and the launcher's environment checks in this process.

tests/test_distributed.py runs whole training jobs under torchrun; this file checks each
collective's values and gradients on its own, where a wrong sign or divisor shows as a number."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from steadygan.core import collectives as C
from steadygan.errors import ConfigError
from steadygan.training import distributed as D

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

WORLD = 2


def rank_values(r: int) -> torch.Tensor:
    """Rank r's sample for global_std: different sizes and values per rank."""
    # Rank 0: 0, 0.1, 0.2; rank 1: 0.3, 0.5, 0.7, 0.9. Sum 2.7, variance 0.09: a sum of 1 or a
    # variance of 1 or more would hide a wrong term of the formula.
    return torch.arange(3 + r, dtype=torch.float64) * 0.1 * (r + 1) + 0.3 * r


def _worker(r: int, init_file: str, out: str) -> None:
    """One rank: run every collective once and save what it saw."""
    os.environ["LOCAL_RANK"] = str(r)
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=r, world_size=WORLD,
                                         timeout=datetime.timedelta(seconds=60))  # a stalled rank fails, not hangs
    ctx = D.ProcessContext.current()
    res: dict = {"rank": C.rank(), "world": C.world_size(), "ctx": (ctx.rank, ctx.world_size, ctx.local_rank),
                 "control": ctx.control, "same_ctx": D.ProcessContext.current() is ctx}

    a = torch.arange(6, dtype=torch.float32).reshape(2, 3) * (r + 1)
    b = torch.tensor([1.0, -2.0], dtype=torch.float64) * (r + 1) ** 2
    C.all_reduce_mean_([a, b])
    res["mean_"] = (a, b)

    x = torch.tensor([r + 1.0, 2.0 * (r + 1)], requires_grad=True)
    z = torch.full((2, 2), float(r), requires_grad=True)
    gx, none, gz = C.global_mean([x, None, z])
    ((gx ** 2).sum() + (3 * gz).sum()).backward()
    res["global_mean"] = (gx.detach(), none, gz.detach(), x.grad, z.grad)

    res["shard"] = C.shard_of(lambda m: torch.arange(10 * m).reshape(m, 10)[:, 0], 3)
    res["std"] = C.global_std(rank_values(r))
    res["agree_max"] = ctx.agree_max([r, -r, 0.5])
    res["broadcast"] = (ctx.broadcast_object({"from": r}), ctx.broadcast_object({"from": r}, src=1))
    res["gather"] = ctx.gather_to_main(10 * r)
    ctx.barrier()

    torch.manual_seed(r)
    net, norm = nn.Linear(3, 2), nn.BatchNorm1d(2)
    norm.running_mean.fill_(r + 1.0)
    norm.weight.data.fill_(r + 1.0)
    ctx.broadcast_modules([net, None, norm], buffers_only=True)
    res["buffers_only"] = (norm.running_mean.clone(), norm.weight.detach().clone(), net.weight.detach().clone())
    ctx.broadcast_modules([net, norm])
    res["modules"] = (net.weight.detach().clone(), net.bias.detach().clone(), norm.weight.detach().clone())

    res["message"] = C.lost_peer_message(RuntimeError("[../gloo/pair.cc:537] Read error [127.0.0.1]: Connection "
                                                      "reset by peer. Later text\nsecond line"))
    res["message_empty"] = C.lost_peer_message(RuntimeError(""))
    torch.save(res, Path(out) / f"rank{r}.pt")
    D.shutdown()
    assert not torch.distributed.is_initialized() and D._CURRENT is None


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of two gloo ranks saw (one start of two processes for the whole file)."""
    folder = tmp_path_factory.mktemp("collectives")
    mp.spawn(_worker, args=(str(folder / "init"), str(folder)), nprocs=WORLD, join=True)
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


# Each test first checks the one-process path of what it tests (the identity), then the two
# ranks' values. The call in this process matters to mutation testing too: mutmut maps each
# function to the tests that call it in the pytest process (it does not see the spawned
# ranks), and runs only those tests against that function's mutants.

def test_two_ranks_know_who_they_are(ranks):
    assert (C.rank(), C.world_size()) == (0, 1) and D.ProcessContext.current() is D.SINGLE_PROCESS
    for r, res in enumerate(ranks):
        assert (res["rank"], res["world"], res["ctx"]) == (r, WORLD, (r, WORLD, r))
        assert res["control"] is None  # gloo already: the agreements need no group of their own
        assert res["same_ctx"]


def test_all_reduce_mean_averages_every_dtype_in_place(ranks):
    one = torch.arange(4.0)
    C.all_reduce_mean_([one])
    assert torch.equal(one, torch.arange(4.0))
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3) * 1.5  # (1 + 2) / 2
    b = torch.tensor([1.0, -2.0], dtype=torch.float64) * 2.5       # (1 + 4) / 2
    for res in ranks:
        assert torch.equal(res["mean_"][0], a) and torch.equal(res["mean_"][1], b)
        assert res["mean_"][1].dtype == torch.float64


def test_global_mean_is_the_mean_forward_and_the_local_gradient_backward(ranks):
    one = torch.ones(2, requires_grad=True)
    assert C.global_mean([one, None]) == [one, None]
    mean_x = torch.tensor([1.5, 3.0])
    for res in ranks:
        gx, none, gz, grad_x, grad_z = res["global_mean"]
        assert torch.equal(gx, mean_x) and none is None and torch.equal(gz, torch.full((2, 2), 0.5))
        assert torch.equal(grad_x, 2 * mean_x)             # d/dx of mean(x)^2 through the local x, unscaled
        assert torch.equal(grad_z, torch.full((2, 2), 3.0))


def test_shards_of_one_draw_are_disjoint_and_in_rank_order(ranks):
    assert torch.equal(C.shard_of(lambda m: torch.arange(m), 3), torch.arange(3))
    assert torch.equal(torch.cat([res["shard"] for res in ranks]), torch.arange(6) * 10)


def test_global_std_is_the_std_of_all_ranks_values_together(ranks):
    assert torch.equal(C.global_std(rank_values(1)), rank_values(1).std())
    everything = torch.cat([rank_values(r) for r in range(WORLD)])
    for res in ranks:
        assert res["std"].item() == pytest.approx(everything.std().item(), rel=1e-12)


def test_agreements_broadcasts_and_gathers(ranks):
    one = D.SINGLE_PROCESS
    assert one.agree_max([1, 2.5]) == [1.0, 2.5] and one.broadcast_object("x") == "x"
    assert one.gather_to_main(3) == [3] and one.is_main and not one.distributed
    one.barrier()
    for r, res in enumerate(ranks):
        assert res["agree_max"] == [1.0, 0.0, 0.5]
        assert res["broadcast"] == ({"from": 0}, {"from": 1})
        assert res["gather"] == ([0, 10] if r == 0 else None)


def test_modules_and_their_buffers_are_rank_zeros_after_a_broadcast(ranks):
    net = nn.Linear(2, 2)
    before = net.weight.detach().clone()
    D.SINGLE_PROCESS.broadcast_modules([net])
    assert torch.equal(net.weight, before)
    zero, one = ranks
    running_mean_1, bn_weight_1, linear_weight_1 = one["buffers_only"]  # rank 1's, after the buffers' broadcast
    assert torch.equal(running_mean_1, torch.full((2,), 1.0))  # rank 0's running mean
    assert torch.equal(bn_weight_1, torch.full((2,), 2.0))     # parameters stay rank 1's
    assert not torch.equal(linear_weight_1, zero["buffers_only"][2])
    for a, b in zip(zero["modules"], one["modules"]):
        assert torch.equal(a, b)
    assert torch.equal(one["modules"][2], torch.full((2,), 1.0))


def test_a_lost_peer_is_named_in_one_short_line(ranks):
    def lost_peer():
        raise RuntimeError("Connection closed by peer")

    with pytest.raises(C.CollectiveError) as exc:
        C.checked(lost_peer)
    assert str(exc.value) == ("rank 0: another process of this job failed or stopped answering (Connection closed "
                              "by peer)")
    assert C.checked(lambda: 7) == 7
    for r, res in enumerate(ranks):
        assert res["message"] == (f"rank {r}: another process of this job failed or stopped answering (Read error "
                                  "[127.0.0.1]: Connection reset by peer)")
        assert res["message_empty"] == (f"rank {r}: another process of this job failed or stopped answering "
                                        "(RuntimeError)")
    long = C.lost_peer_message(RuntimeError("x" * 300))
    assert long == f"rank 0: another process of this job failed or stopped answering ({'x' * 120})"


# --- one process ---------------------------------------------------------------------------------

def test_shutdown_without_a_process_group_only_forgets_the_context(monkeypatch):
    monkeypatch.setattr(D, "_CURRENT", D.ProcessContext(rank=1, world_size=2))
    D.shutdown()
    assert not torch.distributed.is_initialized() and D._CURRENT is None


@pytest.mark.parametrize("env,launched", [
    ({"WORLD_SIZE": "2", "RANK": "0"}, True), ({"WORLD_SIZE": "1", "RANK": "0"}, False),
    ({"WORLD_SIZE": "2"}, False), ({"RANK": "1"}, False), ({}, False), ({"WORLD_SIZE": "3", "RANK": "2"}, True),
])
def test_a_torchrun_job_is_recognised_by_its_environment(monkeypatch, env, launched):
    for key in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert D.launched_by_torchrun() is launched
    if not launched:
        assert D.init_from_environment() is D.SINGLE_PROCESS


def test_a_job_that_cannot_be_joined_is_a_one_line_config_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError) as exc:
        D.init_from_environment("cpu", timeout_s=5)
    text = str(exc.value)
    assert text.startswith("could not join the distributed job (") and "MASTER_ADDR" in text
    assert text.endswith("); check torchrun's --rdzv/--master flags") and "\n" not in text
    assert not torch.distributed.is_initialized()


def test_each_rank_takes_the_gpu_of_its_local_rank():
    ctx = D.ProcessContext(rank=1, world_size=2, local_rank=1)
    assert ctx.device("cuda") == torch.device("cuda", 1) and ctx.device("cuda:1") == torch.device("cuda", 1)
    assert ctx.device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError) as exc:
        ctx.device("cuda:0")
    assert str(exc.value) == ("train.device=cuda:0 in a distributed run: give train.device=cuda and each process "
                              "takes the GPU of its local rank")
    assert D.SINGLE_PROCESS.device("cuda:0") == torch.device("cuda", 0)  # one process: the GPU asked for
    if not torch.cuda.is_available():
        assert D.SINGLE_PROCESS.device("auto") == torch.device("cpu")


@pytest.mark.parametrize("n,parts", [(10, 3), (2, 4), (9, 3), (0, 2)])
def test_chunk_bounds_split_contiguously_with_the_remainder_first(n, parts):
    bounds = [C.chunk_bounds(n, p, parts) for p in range(parts)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert sizes == [n // parts + (1 if p < n % parts else 0) for p in range(parts)]
