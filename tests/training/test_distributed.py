"""Distributed training on loopback (gloo, CPU): two processes are one process with the global batch.

Each test launches its ranks as torchrun would (RANK, WORLD_SIZE, MASTER_ADDR/PORT in the
environment) and compares against a single process run here.

Tolerance: the equivalence tests run in float64. Two ranks and one process compute the same
sums in a different order (a mean over 2B samples vs the mean of two means over B, then an
all-reduce), so each gradient differs by a few units of float64 roundoff (u = 1.1e-16)
times the number of summed terms (tens) times the gradient's size (below 10); Adam turns a
relative gradient change into at most about the same relative change of its step (lr 1e-2),
and three steps barely amplify it. That bounds parameter differences near 1e-14; the tests
allow 1e-11. A synchronisation error (a sum instead of a mean, per-rank instead of global
gradient norms in a penalty, ranks drawing the same samples) moves parameters by 1e-6 to
1e-2, which the tests were checked to catch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

HERE = Path(__file__).parent

ATOL = 1e-11
WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argv: list[str], cwds: list[Path] | None = None, world: int = WORLD) -> list[subprocess.Popen]:
    """Start ``world`` processes of ``python ARGV`` with torchrun's environment."""
    port = free_port()
    procs = []
    for r in range(world):
        env = {**os.environ, "RANK": str(r), "WORLD_SIZE": str(world), "LOCAL_RANK": str(r),
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        procs.append(subprocess.Popen([sys.executable, *argv], env=env, cwd=None if cwds is None else cwds[r],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_two_ranks_update_every_method_exactly_as_one_process_with_the_global_batch(tmp_path, float64, scenarios):
    out = str(tmp_path / "rank{rank}.pt")
    results = finish(launch([str(HERE / "distributed_scenarios.py"), "step_equivalence", out]))
    assert all(rc == 0 for rc, _, _ in results), results
    ranks = [torch.load(out.format(rank=r), weights_only=True) for r in range(WORLD)]
    for name in scenarios.METHODS:
        single = scenarios.run_method(name)  # this process: world size 1, batch 2 x PER_RANK
        assert max_difference(ranks[0][name], ranks[1][name]) == 0.0, f"{name}: the ranks disagree"
        difference = max_difference(ranks[0][name], single)
        assert difference < ATOL, f"{name}: two ranks differ from one process by {difference:.3g}"
        # The methods train: a test that compared untouched parameters would prove nothing.
        torch.manual_seed(0)
        G0, D0 = scenarios.networks()
        start = {**{f"G.{k}": v for k, v in G0.named_parameters()}, **{f"D.{k}": v for k, v in D0.named_parameters()}}
        assert max_difference(single, start) > 1e-3, name


CONFIG = str(HERE.parents[1] / "configs" / "ring8.yaml")


def ring8_args(out: Path | str, steps: int, batch: int, *extra: str) -> list[str]:
    """A small ring8 run: MLP pair without normalisation (batch-independent), R1 on D."""
    return ["train", "--config", CONFIG, "--steps", str(steps), "--no-progress", "--out", str(out),
            "--set", f"data.batch_size={batch}", "--set", "model.width=32", "--set", "data.toy_samples=4000",
            "--set", "d.lr=1e-3", "--set", "g.lr=1e-3", "--set", "d.penalties=[r1:gamma=1]",
            "--set", "train.sample_every=1000", *extra]


def networks_of(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint, weights_only=True)
    return {**{f"G.{k}": v for k, v in state["generator"].items()},
            **{f"D.{k}": v for k, v in state["discriminator"].items()}}


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_a_two_rank_run_is_the_one_process_run_with_the_global_batch_and_only_rank0_writes(tmp_path, float64):
    from steadygan.cli import main
    from steadygan.training.build import build_evaluator
    from steadygan.training.sampling import load_generator

    cwds = [tmp_path / "rank0", tmp_path / "rank1"]
    for c in cwds:
        c.mkdir()
    extra = ("--set", "train.checkpoint_every=6", "--eval-every", "12", "--set", "train.eval_n=600")
    results = finish(launch([str(HERE / "distributed_scenarios.py"), "train_cli", "-",
                             *ring8_args("runs", 12, 8, *extra)], cwds))
    assert [rc for rc, _, _ in results] == [0, 0], results
    assert "2 processes x batch 8 = global batch 16" in results[0][1]
    assert results[1][1] == "", "rank 1 prints nothing"
    assert files_under(cwds[1]) == [], "rank 1 wrote files"
    run = cwds[0] / "runs" / "00000-ring8"
    assert {p.name for p in (run / "checkpoints").iterdir()} >= {"ckpt-00000006.pt", "ckpt-00000012.pt", "best.pt"}
    steps = [row["step"] for row in map(__import__("json").loads, (run / "stats.jsonl").read_text().splitlines())
             if "Loss/D" in row]
    assert steps == list(range(1, 13)), "every step logged once, by one process"
    assert "world_size: 2" in (run / "config.yaml").read_text()

    assert main(ring8_args(tmp_path / "single", 12, 16, *extra)) == 0
    single = tmp_path / "single" / "00000-ring8"
    two = networks_of(run / "checkpoints" / "ckpt-00000012.pt")
    one = networks_of(single / "checkpoints" / "ckpt-00000012.pt")
    assert max_difference(two, one) < ATOL
    assert max_difference(two, networks_of(run / "checkpoints" / "ckpt-00000006.pt")) > 1e-4  # it trained

    # Evaluation: each rank generated its share; rank 0 scored all 600 samples as one process does.
    import json

    logged = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    metrics = next(row for row in logged if "Metric/modes" in row)
    loaded = load_generator(run, run / "checkpoints" / "ckpt-00000012.pt")
    direct = build_evaluator(loaded.config, n=600, seed=0).evaluate(loaded)["metrics"]
    assert metrics["Metric/modes"] == direct["modes_recovered"]
    assert metrics["Metric/hq"] == direct["high_quality_fraction"]

    # The global batch is part of the run: one process may not silently continue it.
    code = main(["train", "--resume", str(run), "--steps", "14", "--no-progress"])
    assert code == 2


def test_a_dead_rank_stops_the_other_within_seconds_and_the_run_resumes_exactly(tmp_path):
    args = ring8_args(tmp_path / "killed", 600, 8, "--set", "train.checkpoint_every=50")
    procs = launch(["-m", "steadygan", *args])
    run = tmp_path / "killed" / "00000-ring8"
    deadline = time.monotonic() + 60
    while not (run / "checkpoints" / "ckpt-00000100.pt").exists():
        assert time.monotonic() < deadline and procs[0].poll() is None, "the run never reached step 100"
        time.sleep(0.01)
    procs[1].kill()
    killed_at = time.monotonic()
    rc, _, stderr = finish(procs[:1], timeout=60)[0]
    procs[1].wait()
    assert time.monotonic() - killed_at < 30
    assert rc == 4, stderr
    assert "another process of this job failed" in stderr and f"--resume {run}" in stderr
    assert not (run / "checkpoints" / "ckpt-00000600.pt").exists()

    resumed = finish(launch(["-m", "steadygan", "train", "--resume", str(run), "--no-progress"]))
    assert [r[0] for r in resumed] == [0, 0], resumed
    straight = finish(launch(["-m", "steadygan", *ring8_args(tmp_path / "straight", 600, 8,
                                                              "--set", "train.checkpoint_every=50")]))
    assert [r[0] for r in straight] == [0, 0], straight
    a = networks_of(run / "checkpoints" / "ckpt-00000600.pt")
    b = networks_of(tmp_path / "straight" / "00000-ring8" / "checkpoints" / "ckpt-00000600.pt")
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed run is not the uninterrupted one"


def test_a_nan_on_one_rank_stops_every_rank_with_one_message(tmp_path):
    results = finish(launch([str(HERE / "distributed_scenarios.py"), "train_with_nan_on_rank1", "-",
                             *ring8_args(tmp_path, 200, 8, "--set", "train.log_every=4")]), timeout=60)
    assert [rc for rc, _, _ in results] == [3, 3], results
    assert "training diverged at step 6: Loss/D (rank 1) = nan" in results[0][2]


def test_sigterm_to_one_rank_stops_both_at_the_same_step_with_a_checkpoint(tmp_path):
    procs = launch(["-m", "steadygan", *ring8_args(tmp_path, 100_000, 8, "--set", "train.log_every=1")])
    stats = tmp_path / "00000-ring8" / "stats.jsonl"
    deadline = time.monotonic() + 60
    while not (stats.exists() and stats.read_text().count("\n") >= 5):
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)
    procs[1].send_signal(signal.SIGTERM)
    results = finish(procs, timeout=60)
    assert [rc for rc, _, _ in results] == [128 + signal.SIGTERM] * 2, results  # both: stopped by that signal
    assert "resume with: steadygan train --nproc 2 --resume" in results[0][1]
    checkpoints = list((tmp_path / "00000-ring8" / "checkpoints").glob("ckpt-*.pt"))
    assert len(checkpoints) == 1
    step = torch.load(checkpoints[0], weights_only=True)["step"]
    assert 5 <= step < 100_000


def launch_nproc_and_wait_for_training(tmp_path: Path) -> subprocess.Popen:
    """`steadygan train --nproc 2` on a long ring8 run, returned once it has logged two steps."""
    proc = subprocess.Popen([sys.executable, "-m", "steadygan", *ring8_args(tmp_path, 100_000, 8), "--nproc", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stats = tmp_path / "00000-ring8" / "stats.jsonl"
    deadline = time.monotonic() + 90
    while not (stats.exists() and stats.read_text().count("\n") >= 2):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc


def test_nproc_launches_the_processes_and_passes_sigterm_on(tmp_path):
    proc = launch_nproc_and_wait_for_training(tmp_path)
    proc.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends the launcher
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, stderr  # the launcher's signal, as one process would exit
    assert "global batch 16" in stdout and "resume with: steadygan train --nproc 2" in stdout
    assert list((tmp_path / "00000-ring8" / "checkpoints").glob("ckpt-*.pt"))


def test_rollback_is_collective_too(tmp_path):
    """A NaN that keeps coming back on rank 1: every rank rolls back together (no hang),
    max_rollbacks times, then both stop."""
    results = finish(launch([str(HERE / "distributed_scenarios.py"), "train_with_nan_on_rank1", "-",
                             *ring8_args(tmp_path, 200, 8, "--set", "train.log_every=2", "--set",
                                         "train.checkpoint_every=2", "--on-nan", "rollback",
                                         "--set", "train.max_rollbacks=2")]), timeout=60)
    assert [rc for rc, _, _ in results] == [3, 3], results
    assert results[0][2].count("rolled back to ckpt-00000004.pt") == 2, results[0][2]
    assert "(rank 1) = nan" in results[0][2]


def test_healing_is_decided_by_rank_0_for_every_rank(tmp_path):
    """Only rank 0's status fails: both ranks go back and apply each remedy together (no hang,
    the same weights), and both stop when the ladder is spent."""
    results = finish(launch([str(HERE / "distributed_scenarios.py"), "train_failing_on_rank0", "-",
                             *ring8_args(tmp_path, 40, 8, "--set", "train.health_every=2", "--set",
                                         "train.heal_every=4", "--on-failure", "heal", "--set",
                                         'train.heal_ladder=[["d.lr=0.0005"], ["lr_scale=0.5"]]')]), timeout=90)
    assert [rc for rc, _, _ in results] == [3, 3], results
    err = results[0][2]
    assert err.count("rolled back to its newest healthy state") == 2 and "(remedy 2 of 2)" in err, err
    assert "after 2 remedies (the heal ladder is spent)" in err
    (run,) = tmp_path.iterdir()
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    # Rank 0's rule watches from step 6 on and fails there: no state after the start was ever
    # clean (inside the warm-up nothing is judged), so both rollbacks go back to step 0.
    assert [(r["step"], r["Rollback/failed_at"]) for r in rows if "Rollback/count" in r] == [(0, 6), (0, 6)]


def test_image_evaluation_is_shared_out_and_scores_what_one_process_scores(tmp_path, idx_dir):
    """DCGAN with BatchNorm in G (per-rank statistics): each rank generates and embeds its
    share with rank 0's statistics; rank 0's FID equals a one-process evaluation of the
    checkpoint it wrote."""
    import json

    from steadygan.training.build import build_evaluator
    from steadygan.training.sampling import load_generator

    args = ["train", "--no-progress", "--out", str(tmp_path / "runs"), "--steps", "4", "--eval-every", "4",
            "--set", "data.name=idx", "--data-dir", str(idx_dir), "--set", "data.batch_size=8",
            "--set", "model.width=8", "--set", "model.z_dim=8", "--set", "train.eval_extractor=pixels",
            "--set", "train.eval_n=40", "--set", "train.eval_metrics=[fid]"]
    results = finish(launch(["-m", "steadygan", *args]))
    assert [rc for rc, _, _ in results] == [0, 0], results
    assert "BatchNorm statistics are per rank" in results[0][2]
    run = tmp_path / "runs" / "00000"
    row = next(r for r in map(json.loads, (run / "stats.jsonl").read_text().splitlines()) if "Metric/fid" in r)
    loaded = load_generator(run, run / "checkpoints" / "ckpt-00000004.pt")
    direct = build_evaluator(loaded.config, metrics=["fid"], n=40, extractor="pixels").evaluate(loaded)
    assert row["Metric/fid"] == pytest.approx(direct["metrics"]["fid"], rel=1e-6)


def test_an_error_on_one_rank_only_stops_the_others_at_once(tmp_path, idx_dir):
    """Rank 1 cannot find the data (its working directory lacks it): it reports that and
    leaves; rank 0, waiting in a collective, sees the closed connection and stops too."""
    import shutil

    cwds = [tmp_path / "rank0", tmp_path / "rank1"]
    for c in cwds:
        c.mkdir()
    shutil.copytree(idx_dir, cwds[0] / "data")
    # data.root as given (--data-dir would store the absolute folder it names, which rank 1 can read)
    args = ["-m", "steadygan", "train", "--no-progress", "--steps", "4", "--set", "data.name=idx",
            "--set", "data.root=data", "--set", "data.batch_size=8", "--set", "model.width=8", "--set", "model.z_dim=8"]
    started = time.monotonic()
    results = finish(launch(args, cwds), timeout=120)
    assert time.monotonic() - started < 30, "a rank waited for one that had already failed"
    assert [rc for rc, _, _ in results] == [4, 2], results
    assert "another process of this job failed" in results[0][2]
    assert "data" in results[1][2] and "Traceback" not in results[1][2]


def test_a_checkpoint_rank0_cannot_write_stops_every_rank_without_naming_it(tmp_path):
    results = finish(launch([str(HERE / "distributed_scenarios.py"), "train_with_full_disk_on_rank0", "-",
                             *ring8_args(tmp_path, 20, 8, "--set", "train.checkpoint_every=5")]), timeout=60)
    assert [rc for rc, _, _ in results] == [2, 4], results
    assert "No space left" in results[0][2] or "free" in results[0][2]
    assert "rank 0 could not write" in results[1][2]


def test_nproc_checks_the_config_before_launching():
    proc = subprocess.run([sys.executable, "-m", "steadygan", "train", "--nproc", "2", "--set", "train.amp=bogus"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "train.amp" in proc.stderr


def test_an_ema_of_a_sync_batchnorm_generator_normalises_locally():
    from steadygan.models import build_models, revert_sync_batchnorm

    torch.manual_seed(0)
    G = build_models("mlp", (2,), 4, g_norm="batch").generator
    reference = G.eval()(z := torch.randn(5, 4))
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(G)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    local = revert_sync_batchnorm(synced).eval()
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in local.modules())
    assert torch.equal(local(z), reference)
    local.train()(z)  # runs on CPU in one process: no collective inside


def test_processes_of_a_killed_launcher_stop_with_a_checkpoint(tmp_path):
    """A closed terminal or kill -9 of `--nproc`'s launcher must not leave processes training unseen."""
    proc = launch_nproc_and_wait_for_training(tmp_path)
    workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert len(workers) == 2
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()
              for pid in workers):
        assert time.monotonic() < deadline, "the launched processes outlived their launcher"
        time.sleep(0.1)
    assert list((tmp_path / "00000-ring8" / "checkpoints").glob("ckpt-*.pt"))


def test_a_two_rank_cyclegan_run_with_its_history_is_the_one_process_run(tmp_path, idx_dir, float64):
    """Instance norm only (no batch coupling): two ranks with the global pool of generated images
    train exactly what one process with the global batch trains, history included."""
    from steadygan.cli import main

    def args(out, batch):
        return ["train", "--no-progress", "--out", str(out), "--steps", "6", "--config", "configs/sneakers2boots.yaml",
                "--data-dir", str(idx_dir), "--set", f"data.batch_size={batch}", "--set", "model.width=8",
                "--set", "train.fake_history=3", "--set", "d.penalties=[r1:gamma=1]",
                "--set", "train.sample_every=1000", "--set", "train.checkpoint_every=6"]

    cwds = [tmp_path / "rank0", tmp_path / "rank1"]
    for c in cwds:
        c.mkdir()
    root = Path(__file__).parents[2]
    results = finish(launch([str(HERE / "distributed_scenarios.py"), "train_cli", "-",
                             *[a.replace("configs/", f"{root}/configs/") for a in args("runs", 2)]], cwds))
    assert [rc for rc, _, _ in results] == [0, 0], results
    assert main([a.replace("configs/", f"{root}/configs/") for a in args(tmp_path / "single", 4)]) == 0
    two_ckpt = cwds[0] / "runs" / "00000-sneakers2boots" / "checkpoints" / "ckpt-00000006.pt"
    one_ckpt = tmp_path / "single" / "00000-sneakers2boots" / "checkpoints" / "ckpt-00000006.pt"
    two_nets, one_nets = networks_of(two_ckpt), networks_of(one_ckpt)
    # A convolution's bias before InstanceNorm has no effect: its gradient is float64 rounding
    # of zero, which Adam scales up to steps near 1e-11 that differ between the two runs.
    idle = {k for k, v in one_nets.items() if k.endswith(".bias") and v.abs().max() < 1e-9}
    assert idle and all(k.startswith(("G.", "D.")) for k in idle)
    assert max_difference({k: v for k, v in two_nets.items() if k not in idle},
                          {k: v for k, v in one_nets.items() if k not in idle}) < ATOL
    two, one = (torch.load(p, weights_only=True)["fake_history"] for p in (two_ckpt, one_ckpt))
    assert two["filled"] == one["filled"] == 3
    assert (two["images"] - one["images"]).abs().max() < ATOL
