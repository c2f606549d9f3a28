"""``steadygan compare``: train every (variant, seed) pair into one lab folder, resumably.

Layout of a lab folder::

    lab/ring8/
      compare.yaml              what was asked: base config, overrides, variants, seeds, budget
      runs/<slug>-s<seed>/      an ordinary run directory, plus done.json once it has ended
      report/                   written by steadygan.lab.report

Resumability: a run with a ``done.json`` marker that the current budget does not extend is
skipped; a run with checkpoints but no marker (interrupted, killed) is resumed from its newest
checkpoint, exactly; a run directory with no checkpoint is started again from scratch.
A run that diverges gets a marker with ``status: diverged`` and the compare goes on.

``jobs > 1`` runs pairs in a process pool using the *spawn* start method rather than
``steadygan train`` subprocesses: every worker runs the same ``run_one`` as the sequential
path (fixed run directory, structured result, divergence caught as an exception rather
than parsed from an exit code), and spawn gives each worker a fresh interpreter, where fork
would copy a parent whose torch/OpenMP thread pools may already be running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import yaml

from ..apps.pictures import newest_sample_grid
from ..config import RESUMABLE_CHANGES, Config, diff_configs
from ..errors import ConfigError, Interrupted, TrainingDiverged
from ..files import atomic_write_text
from ..training.build import config_from_dict, load_config
from ..training.checkpoint import latest_checkpoint
from ..training.guards import LOCK_FILE, request_stop_on_sigterm, run_lock
from ..training.resume import keep_stored_arithmetic, newest_usable_checkpoint, normalised
from ..training.trainer import train
from .plan import PlanKeys, check_plan
from .report import MARKER, PLAN_FILE, parse_metric, write_report
from .variants import BASELINE, Variant, parse_variants

RUNS = "runs"
# Bookkeeping keys that may differ when a lab folder is resumed, beyond the trainer's own list:
# the run directory is fixed by the compare, so where it lives and what it is called do not matter.
_LAB_RESUMABLE = RESUMABLE_CHANGES | {"train.out_dir", "train.name"}


@dataclass(frozen=True)
class RunJob:
    """One (variant, seed) pair: its resolved config and fixed run directory."""

    variant: Variant
    seed: int
    run_dir: Path
    cfg: Config

    @property
    def name(self) -> str:
        return self.run_dir.name


def seed_list(seeds: list[int] | int) -> list[int]:
    """An int N means seeds 0..N-1; a list is used as given."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds must be >= 1 (got {seeds})")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"seeds must be a non-empty list without repeats (got {out})")
    return out


def plan_runs(base_config: Path | None, base_overrides: list[str], variants: list[Variant], seeds: list[int],
              steps: int | None, time_budget: float | None, out_dir: Path, progress: bool = False) -> list[RunJob]:
    """Resolve and validate every pair's config before anything trains (a typo fails at once)."""
    jobs = []
    for variant in variants:
        base = load_config(base_config, [*base_overrides, *variant.overrides])
        for seed in seeds:
            data = base.to_dict()
            name = f"{variant.slug}-s{seed}"
            t = data["train"]
            t.update(seed=seed, name=name, out_dir=str(out_dir / RUNS), progress=progress)
            if steps is not None:
                t["steps"] = steps
            if time_budget is not None:
                t["time"] = time_budget
            jobs.append(RunJob(variant, seed, out_dir / RUNS / name, config_from_dict(data)))
    return jobs


# --- markers and run state ------------------------------------------------------------------

def read_marker(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / MARKER
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # absent, or half-written: treat the run as unfinished and resume it


def write_marker(run_dir: Path, marker: dict[str, Any]) -> None:
    """Written atomically: a marker must never claim a run is done when only half of it exists."""
    atomic_write_text(Path(run_dir) / MARKER, json.dumps(marker, indent=2) + "\n")


def is_done(marker: dict[str, Any] | None, cfg: Config) -> bool:
    """Whether a marked run needs nothing more under the budget in ``cfg``.

    Diverged runs are final (deterministic seeds would diverge again), as are runs stopped by a
    failing health status or pruned by a tune. A finished run is done
    when it reached the step budget, or when it stopped on a time budget at least as large as
    the current one; a larger budget resumes it.
    """
    if marker is None:
        return False
    if marker.get("status") == "diverged" or marker.get("stopped") in ("failing", "pruned"):
        return True  # deterministic: it would end the same way again
    if marker.get("step", 0) >= cfg.train.steps:
        return True
    if marker.get("stopped") == "time":
        previous = marker.get("time_budget")
        return cfg.train.time is not None and previous is not None and cfg.train.time <= previous
    return False


def _marker(job: RunJob, status: str, step: int, stopped: str, checkpoint: Path | None,
            samples: Path | None, message: str | None = None, parallel: int = 1) -> dict[str, Any]:
    return {"status": status, "variant": job.variant.label, "spec": job.variant.spec, "seed": job.seed,
            "run_dir": str(job.run_dir), "step": step, "stopped": stopped,
            "checkpoint": str(checkpoint) if checkpoint else None, "samples": str(samples) if samples else None,
            "steps_budget": job.cfg.train.steps, "time_budget": job.cfg.train.time, "message": message,
            # Runs trained side by side share the cores: the report says their step times are rough.
            "parallel": parallel}


def _check_resumable(job: RunJob, saved: dict[str, Any]) -> None:
    saved = normalised(saved, str(job.run_dir))  # configs of older releases compare by meaning
    planned = job.cfg.to_dict()
    if planned["train"]["world_size"] is None:  # a compare trains each run in one process
        planned["train"]["world_size"] = 1
    changed = [k for k in diff_configs(saved, planned) if k not in _LAB_RESUMABLE]
    if changed:
        raise ConfigError(f"{job.run_dir} was trained with a different config ({', '.join(changed)} changed); "
                          "use a new output folder, or delete that run directory to retrain it")


# --- one run --------------------------------------------------------------------------------

def run_one(job: RunJob, threads: int | None = None, parallel: int = 1,
            observer: Callable[[int, dict[str, float]], str | None] | None = None) -> dict[str, Any]:
    """Skip, resume or train one pair; returns its marker plus ``action`` (what was done).

    ``parallel``: how many runs train at once (recorded in the marker for the report);
    ``observer``: told each evaluation, may end the run (``train``'s)."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(job.run_dir):  # before the directory is touched: one writer, even while it is cleaned
        return _run_one_locked(job, threads, parallel, observer)


def _run_one_locked(job: RunJob, threads: int | None, parallel: int,
                    observer: Callable[[int, dict[str, float]], str | None] | None = None) -> dict[str, Any]:
    marker = read_marker(job.run_dir)
    ckpt = latest_checkpoint(job.run_dir)
    saved = job.run_dir / "config.yaml"
    if (marker is not None or ckpt is not None) and saved.exists():
        # Checked before skipping too: one report must not mix runs of different configs.
        stored = yaml.safe_load(saved.read_text())
        keep_stored_arithmetic(job.cfg, stored)  # a run from before the fast step continues on its own step
        _check_resumable(job, stored)
    if is_done(marker, job.cfg):
        return {**marker, "action": "skipped"}
    if threads:
        import torch

        torch.set_num_threads(threads)
    resume, action = None, "trained"
    if ckpt is not None:
        _, resume = newest_usable_checkpoint(job.run_dir)  # skips (with a warning) truncated or non-finite ones
        _check_resumable(job, resume["config"])
        (job.run_dir / MARKER).unlink(missing_ok=True)  # a larger budget reopens a finished run
        action = f"resumed from step {resume['step']}"  # the trainer cuts stats.jsonl back to this step
    else:
        for entry in job.run_dir.iterdir():  # started but never checkpointed: nothing worth keeping
            if entry.name != LOCK_FILE:  # (the lock we hold stays: removing it would let a second writer in)
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    started = time.perf_counter()
    try:
        result = train(job.cfg, run_dir=job.run_dir, resume=resume, observer=observer)
    except TrainingDiverged as exc:
        cause = exc.__cause__
        step = getattr(cause, "step", None)
        marker = _marker(job, "diverged", step if step is not None else -1, "diverged",
                         latest_checkpoint(job.run_dir), newest_sample_grid(job.run_dir), str(exc), parallel)
        write_marker(job.run_dir, marker)
        return {**marker, "action": "diverged", "seconds": time.perf_counter() - started}
    marker = _marker(job, "finished", result.step, result.stopped, result.checkpoint, result.samples,
                     parallel=parallel)
    if result.stopped != "interrupted":
        write_marker(job.run_dir, marker)
    return {**marker, "action": "interrupted" if result.stopped == "interrupted" else action,
            "signal": result.signal, "seconds": time.perf_counter() - started}


def describe(outcome: dict[str, Any]) -> str:
    action = outcome["action"]
    if action == "skipped":
        return f"already {outcome['status']} at step {outcome['step']} (skipped)"
    if action == "diverged":
        return f"diverged at step {outcome['step']} (recorded; going on)"
    if action == "interrupted":
        return f"interrupted at step {outcome['step']}"
    return f"{action}: step {outcome['step']} ({outcome['stopped']}) in {outcome['seconds']:.1f} s"


# --- the whole compare ------------------------------------------------------------------------

# What may change when a lab folder is used again (lab/plan.py): entries added to these lists
# and a larger budget, with --extend; nothing else.
PLAN_KEYS = PlanKeys(fixed=("base_config", "base_overrides"), lists=("variants", "seeds"), budgets=("steps", "time"))


def make_plan(base_config: Path | None, base_overrides: list[str], variants: list[Variant], seeds: list[int],
              steps: int | None, time_budget: float | None, jobs: list[RunJob]) -> dict[str, Any]:
    """compare.yaml: enough for ``steadygan report`` (and a person) to know what was compared."""
    return {
        "base_config": str(base_config) if base_config is not None else None,
        "base_overrides": list(base_overrides),
        "variants": [{"spec": v.spec, "label": v.label, "slug": v.slug, "overrides": list(v.overrides)}
                     for v in variants],
        "baseline": next((v.label for v in variants if not v.overrides and v.spec.startswith(BASELINE)), None),
        "seeds": seeds,
        "steps": steps if steps is not None else jobs[0].cfg.train.steps,
        "time": time_budget if time_budget is not None else jobs[0].cfg.train.time,
        "runs": [{"variant": j.variant.label, "seed": j.seed, "dir": f"{RUNS}/{j.name}"} for j in jobs],
    }


def _comparable(plan: dict[str, Any]) -> dict[str, Any]:
    """The keys of a plan that say what a lab is (variants by their specs)."""
    return {"base_config": plan.get("base_config"), "base_overrides": list(plan.get("base_overrides") or []),
            "variants": [v["spec"] if isinstance(v, dict) else v for v in plan.get("variants") or []],
            "seeds": list(plan.get("seeds") or []), "steps": plan.get("steps"), "time": plan.get("time")}


def read_plan(out_dir: Path) -> dict[str, Any] | None:
    """The plan compare.yaml holds, or None for a folder without one (new, or an older lab)."""
    path = Path(out_dir) / PLAN_FILE
    if not path.exists():
        return None
    try:
        plan = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the lab's plan ({str(exc).splitlines()[0]}); move it aside "
                          "to start the lab again") from exc
    if not isinstance(plan, dict):
        raise ConfigError(f"{path}: not a lab plan (a mapping of base_config, variants, seeds, ...)")
    return plan


def write_plan(out_dir: Path, plan: dict[str, Any]) -> Path:
    path = out_dir / PLAN_FILE
    atomic_write_text(path, yaml.safe_dump(plan, sort_keys=False, allow_unicode=True))
    return path


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_pool(jobs: list[RunJob], workers: int) -> None:
    # Split the cores between workers: torch's default of one thread per core in every
    # worker would oversubscribe the machine and make each run slower than sequential.
    threads = max(1, (os.cpu_count() or 1) // workers)
    # Workers remember a SIGTERM that arrives outside a training loop (start-up, between
    # runs) instead of dying of it, so every worker stops the same way: at a step boundary.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=request_stop_on_sigterm)
    interrupted: list[int] = []  # the signals runs were stopped by
    futures: dict = {}
    terminated = []

    def pass_on_sigterm(signum, frame):
        # SIGTERM reaches this process only (unlike a terminal's Ctrl-C, which reaches the
        # whole process group): no new run starts, and every worker gets the signal, stops
        # at a step boundary and checkpoints; the loop below waits for them. The pool keeps
        # its worker processes in a private mapping; there is no public way to signal them.
        terminated.append(signum)
        for future in futures:
            future.cancel()
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            if process.is_alive():
                process.terminate()

    previous = (signal.signal(signal.SIGTERM, pass_on_sigterm)
                if threading.current_thread() is threading.main_thread() else None)
    try:
        for job in jobs:
            futures[pool.submit(run_one, job, None if job.cfg.train.threads else threads, workers)] = job
        for done, future in enumerate(as_completed(futures), 1):
            if future.cancelled():
                continue
            outcome = future.result()
            if outcome["action"] == "interrupted":
                interrupted.append(outcome.get("signal") or signal.SIGTERM)
            _log(f"[{done}/{len(jobs)}] {futures[future].name}: {describe(outcome)}")
    except BrokenProcessPool as exc:
        pool.shutdown(wait=True, cancel_futures=True)
        raise ConfigError(f"a compare worker process died ({exc}); run the same command again to resume "
                          "the unfinished runs") from exc
    except BaseException:
        # On Ctrl-C the workers got the same signal: each stops at a step boundary and
        # checkpoints. Runs not yet started are dropped; the next compare starts them.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    pool.shutdown(wait=True)
    if terminated or interrupted:
        raise Interrupted((terminated or interrupted)[0])


def run_compare(base_config: Path | None, base_overrides: list[str], variants: list[str], seeds: list[int] | int,
                steps: int | None, time_budget: float | None, out_dir: Path, jobs: int = 1, progress: bool = False,
                main_metric: str | None = None, threshold: float | None = None, extend: bool = False) -> Path:
    """Train (or skip, or resume) every (variant, seed) pair, then write the report; returns report.md.

    Every argument is checked before anything is created or trained. A folder that already
    holds a lab is resumed with the same arguments; other arguments are refused, except new
    variants or seeds and a larger budget with ``extend`` (see ``lab/plan.py``)."""
    out_dir = Path(out_dir)
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1 (got {jobs})")
    parsed = parse_variants(list(variants))
    seeds = seed_list(seeds)
    if main_metric is not None:
        parse_metric(main_metric)  # a metric the report cannot read fails now, not after training
    runs = plan_runs(Path(base_config) if base_config else None, list(base_overrides), parsed, seeds, steps,
                     time_budget, out_dir, progress=progress and jobs == 1)
    plan = make_plan(base_config, base_overrides, parsed, seeds, steps, time_budget, runs)
    old = read_plan(out_dir)
    check_plan(out_dir, None if old is None else _comparable(old), _comparable(plan), PLAN_KEYS, extend,
               "steadygan compare")
    (out_dir / RUNS).mkdir(parents=True, exist_ok=True)
    write_plan(out_dir, plan)
    _log(f"compare: {len(parsed)} variant(s) x {len(seeds)} seed(s) = {len(runs)} runs in {out_dir / RUNS}")
    if jobs == 1:
        for i, job in enumerate(runs, 1):
            outcome = run_one(job)
            _log(f"[{i}/{len(runs)}] {job.name}: {describe(outcome)}")
            if outcome["action"] == "interrupted":
                raise Interrupted(outcome["signal"] or signal.SIGINT)
    else:
        _run_pool(runs, min(jobs, len(runs)))
    return write_report(out_dir, main_metric=main_metric, threshold=threshold)
