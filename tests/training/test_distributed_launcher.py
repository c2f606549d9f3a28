"""The process context and the `--nproc` launcher, in one process, with torch.distributed and the
child processes stood in for: what each call passes on, and which exit code comes back.

The multi-process behaviour itself is tested with real processes in test_distributed.py and
test_distributed_collectives.py; these tests pin the arithmetic and the bookkeeping around it.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys

import pytest
import torch

from steadygan.errors import ConfigError
from steadygan.training import distributed as D


class FakeProc:
    """A child process that runs for ``polls`` polls, then ends with ``code``."""

    def __init__(self, code: int, polls: int = 0, on_poll=None) -> None:
        self.code, self.polls, self.on_poll = code, polls, on_poll
        self.returncode, self.signals, self.killed = None, [], False

    def poll(self):
        if self.on_poll is not None:
            self.on_poll()
        if self.returncode is None:
            if self.polls <= 0 or self.killed:
                self.returncode = -9 if self.killed else self.code
            self.polls -= 1
        return self.returncode

    def send_signal(self, sig):
        self.signals.append(sig)

    def kill(self):
        self.killed = True


@pytest.fixture
def no_sleep(monkeypatch):
    monkeypatch.setattr(D.time, "sleep", lambda s: None)


def test_the_nproc_flag_is_taken_out_of_the_command_every_process_runs():
    assert D._without_nproc(["train", "--nproc", "2", "--steps", "3"]) == ["train", "--steps", "3"]
    assert D._without_nproc(["train", "--nproc=4", "-c", "x.yaml"]) == ["train", "-c", "x.yaml"]
    assert D._without_nproc(["--steps", "3", "--nproc"]) == ["--steps", "3"]
    assert D._without_nproc(["--nprocs", "2"]) == ["--nprocs", "2"]  # another flag stays


def test_each_process_gets_torchruns_environment_and_a_share_of_the_cores(monkeypatch):
    started = []
    monkeypatch.setattr(D.subprocess, "Popen", lambda argv, **kw: started.append((argv, kw)) or FakeProc(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(D.os, "cpu_count", lambda: 8)
    procs = D._spawn(3, ["train", "--steps", "2"])
    assert len(procs) == 3 and [argv for argv, _ in started] == [[sys.executable, "-m", "steadygan", "train",
                                                                   "--steps", "2"]] * 3
    ports = {kw["env"]["MASTER_PORT"] for _, kw in started}
    assert len(ports) == 1 and int(ports.pop()) > 0
    for rank, (_, kw) in enumerate(started):
        env = kw["env"]
        assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"]) == (str(rank), str(rank),
                                                                                               "3", "3")
        assert env["MASTER_ADDR"] == "127.0.0.1" and env["OMP_NUM_THREADS"] == "2"  # 8 cores // 3
        assert kw["start_new_session"] is True and kw["preexec_fn"] is D._stop_with_parent
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    monkeypatch.setattr(D.os, "cpu_count", lambda: 1)
    started.clear()
    D._spawn(2, ["train"])
    assert [kw["env"]["OMP_NUM_THREADS"] for _, kw in started] == ["5", "5"]  # the user's setting wins


def test_a_launched_process_asks_for_sigterm_when_its_launcher_dies(monkeypatch):
    calls = []

    class Libc:
        def prctl(self, *args):
            calls.append(args)

    monkeypatch.setattr(D.ctypes, "CDLL", lambda name, use_errno: calls.append((name, use_errno)) or Libc())
    D._stop_with_parent()
    assert calls == [("libc.so.6", True), (1, signal.SIGTERM)]  # PR_SET_PDEATHSIG


def test_a_process_outliving_a_failed_one_by_a_minute_is_stopped(monkeypatch, no_sleep):
    clock = [0.0]
    monkeypatch.setattr(D.time, "monotonic", lambda: clock[0])
    failed, hung = FakeProc(1), FakeProc(0, polls=10 ** 6)

    def tick():
        clock[0] += 1.0

    hung.on_poll = tick
    D._wait([failed, hung])
    assert hung.killed and 60.0 <= clock[0] <= 64.0
    finished, slow = FakeProc(0), FakeProc(0, polls=5)
    D._wait([finished, slow])
    assert not slow.killed and slow.returncode == 0  # success gives no deadline


@pytest.mark.parametrize("codes, expected", [((0, 0), 0), ((2, 0), 2), ((0, 3), 3), ((4, 3), 4), ((-9, 0), 137)])
def test_the_launcher_returns_rank_0s_code_or_the_first_failure(monkeypatch, no_sleep, codes, expected):
    monkeypatch.setattr(D, "_spawn", lambda nproc, argv: [FakeProc(c) for c in codes])
    assert D.launch_local(2, ["train", "--nproc", "2"]) == expected


def test_a_launch_every_process_of_which_a_signal_killed_says_so(monkeypatch, no_sleep, capsys):
    monkeypatch.setattr(D, "_spawn", lambda nproc, argv: [FakeProc(-9), FakeProc(-15)])
    assert D.launch_local(2, []) == 137
    assert capsys.readouterr().err == ("steadygan train: every process was stopped by a signal before it could "
                                       "write a checkpoint\n")
    monkeypatch.setattr(D, "_spawn", lambda nproc, argv: [FakeProc(-9), FakeProc(0)])
    D.launch_local(2, [])
    assert capsys.readouterr().err == ""


def test_the_launchers_signal_is_passed_on_once_and_is_its_exit_code(monkeypatch, no_sleep, capsys):
    procs, raised = [], []

    def first_poll_raises_sigint():
        if not raised:
            raised.append(True)
            signal.raise_signal(signal.SIGINT)  # a terminal's Ctrl-C, at the launcher

    def spawn(nproc, argv):
        procs.extend([FakeProc(143, polls=3, on_poll=first_poll_raises_sigint), FakeProc(143, polls=3)])
        return procs

    monkeypatch.setattr(D, "_spawn", spawn)
    monkeypatch.setattr(D.os, "cpu_count", lambda: 1)
    before = signal.getsignal(signal.SIGINT)
    assert D.launch_local(2, ["train"]) == 128 + signal.SIGINT  # the processes stopped cleanly on its SIGTERM
    assert [p.signals for p in procs] == [[signal.SIGTERM], [signal.SIGTERM]]
    assert signal.getsignal(signal.SIGINT) is before  # the launcher's handlers are gone again
    assert capsys.readouterr().err == "warning: 2 processes on 1 cores: they will share them and run slowly\n"


class FakeDist:
    """torch.distributed as a joined job of ``world`` processes would answer, recording calls."""

    def __init__(self, world: int = 2, rank: int = 1, backend: str = "nccl") -> None:
        self.world, self.rank, self.backend, self.calls = world, rank, backend, []

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_world_size(self):
        return self.world

    def get_rank(self):
        return self.rank

    def get_backend(self):
        return self.backend

    def new_group(self, backend):
        self.calls.append(("new_group", backend))
        return f"group:{backend}"

    def monitored_barrier(self, group, timeout):
        self.calls.append(("monitored_barrier", group, timeout))
        raise RuntimeError("a peer left")  # the wait ends early; shutdown goes on

    def destroy_process_group(self):
        self.calls.append(("destroy_process_group",))


def test_the_context_of_a_joined_job_is_built_once_with_a_gloo_group_for_agreements(monkeypatch):
    fake = FakeDist(world=4, rank=2, backend="cpu:gloo,cuda:nccl")
    monkeypatch.setattr(D, "dist", fake)
    monkeypatch.setattr(D, "_CURRENT", None)
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = D.ProcessContext.current()
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.control) == (2, 4, 1, "group:gloo")
    assert D.ProcessContext.current() is ctx and fake.calls == [("new_group", "gloo")]  # once per job
    fake.rank = 3  # another rank's context is another context
    assert D.ProcessContext.current().rank == 3
    monkeypatch.setattr(D, "_CURRENT", None)
    gloo = FakeDist(world=2, rank=0, backend="gloo")
    monkeypatch.setattr(D, "dist", gloo)
    assert D.ProcessContext.current().control is None and gloo.calls == []  # gloo itself agrees on the CPU
    monkeypatch.setattr(D, "dist", FakeDist(world=1))
    assert D.ProcessContext.current() is D.SINGLE_PROCESS


def test_shutdown_waits_for_the_others_at_most_its_time_then_leaves(monkeypatch):
    fake = FakeDist(world=2)
    monkeypatch.setattr(D, "dist", fake)
    monkeypatch.setattr(D, "_CURRENT", D.ProcessContext(1, 2, 1, control="control"))
    D.shutdown(wait_s=7.5)
    assert fake.calls == [("monitored_barrier", "control", datetime.timedelta(seconds=7.5)),
                          ("destroy_process_group",)] and D._CURRENT is None
    fake.calls.clear()
    D.shutdown(wait_s=0)  # after an error on this rank alone: leave at once
    assert fake.calls == [("destroy_process_group",)]


def test_a_rank_takes_the_gpu_of_its_local_rank():
    ctx = D.ProcessContext(rank=3, world_size=4, local_rank=1)
    assert ctx.device("cuda") == torch.device("cuda", 1) and ctx.device("cuda:1") == torch.device("cuda", 1)
    assert ctx.device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError) as exc:
        ctx.device("cuda:0")
    assert str(exc.value) == ("train.device=cuda:0 in a distributed run: give train.device=cuda and each process "
                              "takes the GPU of its local rank")
    assert D.ProcessContext().device("cuda:0") == torch.device("cuda", 0)  # one process: as given
    if not torch.cuda.is_available():
        assert D.ProcessContext().device("auto") == torch.device("cpu")


def test_one_process_agrees_with_itself():
    ctx = D.ProcessContext()
    assert ctx.agree_max([1, 2.5]) == [1.0, 2.5] and ctx.broadcast_object({"a": 1}) == {"a": 1}
    assert ctx.gather_to_main("x") == ["x"] and ctx.barrier() is None
    net = torch.nn.Linear(2, 2)
    before = [p.clone() for p in net.parameters()]
    ctx.broadcast_modules([net, None])
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert ctx.is_main and not ctx.distributed and D.ProcessContext(rank=1, world_size=2).distributed


def test_joining_a_job_reports_one_line_and_passes_the_timeout(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert D.init_from_environment() is D.SINGLE_PROCESS  # not launched by torchrun
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert D.launched_by_torchrun()
    joined = []

    def init(backend, timeout):
        joined.append((backend, timeout))
        raise RuntimeError("connection refused\nat rendezvous")

    monkeypatch.setattr(D.dist, "init_process_group", init)
    with pytest.raises(ConfigError) as exc:
        D.init_from_environment("cpu", timeout_s=42.0)
    assert str(exc.value) == ("could not join the distributed job (connection refused); check torchrun's "
                              "--rdzv/--master flags")
    assert joined == [("gloo", datetime.timedelta(seconds=42.0))]
    monkeypatch.setattr(D.dist, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="^this PyTorch build has no torch.distributed: run one process$"):
        D.init_from_environment("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not D.launched_by_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK")
    assert not D.launched_by_torchrun()
    assert os.environ["WORLD_SIZE"] == "2"
