"""Mutation-test one module against its own test files only: the fast, conservative score.

``benchmarks/mutation.sh`` judges each mutant with every unit test that reaches its function.
For the modules that every run touches (config, step, checkpoint, the data readers) that
includes the tests that train, so a surviving mutant costs minutes and a full run takes many
hours on 2 cores. This script runs mutmut on one module at a time in a working copy of its own
(``mutants-by-module/<module>/``), with the test selection narrowed to the files that test that
module (the map below). A mutant that only some other file would catch counts as surviving
here, so the score is a lower bound of the full one, and a survivor is a reason to read that
module's own tests. The score counts timeouts as killed, as mutmut's own score does.

    python benchmarks/mutation_module.py core.step        # run (resumes), then report
    python benchmarks/mutation_module.py core.step --report   # only report the last run
    python benchmarks/mutation_module.py core.step --fresh    # start again (after the code or tests changed:
                                                          # the working copy is not refreshed otherwise)
    python benchmarks/mutation_module.py --list           # modules and their test files

Not part of CI (minutes to an hour a module). Needs ``pip install -e '.[mutation]'``.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the config written is not checked
    tomllib = None

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants-by-module"

# module (under src/steadygan, dotted) -> the test files that test it (the parsers are also
# fuzzed by tests/test_parsers_fuzz.py; fp16 training, the penalties' scale included, in
# tests/training/test_amp.py)
TESTS: dict[str, tuple[str, ...]] = {
    "core.losses": ("tests/core/test_losses.py",),
    "core.penalties": ("tests/core/test_penalties.py", "tests/training/test_amp.py"),
    "core.clipping": ("tests/core/test_clipping.py",),
    "core.step": ("tests/core/test_step.py", "tests/training/test_fast_step.py", "tests/training/test_amp.py"),
    "core.ema": ("tests/core/test_ema.py",),
    "core.optim": ("tests/core/test_optim.py",),
    "core.batch": ("tests/core/test_batch.py",),
    "core.augment": ("tests/core/test_augment.py",),
    "core.pair": ("tests/core/test_pair.py", "tests/models/test_conditional.py", "tests/core/test_batch.py"),
    "core.sampler": ("tests/core/test_sampler.py",),
    "core.collectives": ("tests/training/test_distributed_collectives.py",),
    "config": ("tests/test_config.py", "tests/test_parsers_fuzz.py"),
    "files": ("tests/test_files.py", "tests/training/test_checkpoint.py"),
    "training.fast_paths": ("tests/training/test_fast_step.py",),
    "training.checkpoint": ("tests/training/test_checkpoint.py", "tests/test_parsers_fuzz.py"),
    "training.build": ("tests/core/test_step.py", "tests/test_config.py", "tests/training/test_trainer.py"),
    "training.health": ("tests/training/test_health.py",),
    "training.distributed": ("tests/training/test_distributed_launcher.py",
                             "tests/training/test_distributed_collectives.py"),
    "data.base": ("tests/data/test_data.py", "tests/core/test_batch.py", "tests/data/test_prepared.py",
                  "tests/models/test_conditional.py"),
    "data.idx": ("tests/data/test_data.py", "tests/test_parsers_fuzz.py"),
    "data.toy": ("tests/data/test_data.py",),
    "data.cifar": ("tests/data/test_data.py", "tests/test_parsers_fuzz.py"),
    "data.folder": ("tests/data/test_data.py", "tests/test_parsers_fuzz.py"),
    "data.stacked": ("tests/data/test_data.py", "tests/metrics/test_metrics_modes.py"),
    "data.prepared": ("tests/data/test_prepared.py",),
    "metrics.fid": ("tests/metrics/test_metrics_fid.py",),
    "metrics.kid": ("tests/metrics/test_metrics_kid.py",),
    "metrics.prdc": ("tests/metrics/test_metrics_prdc.py",),
    "metrics.modes": ("tests/metrics/test_metrics_modes.py",),
    "metrics.conditional": ("tests/metrics/test_metrics_conditional.py",),
    "metrics.stats": ("tests/metrics/test_metrics_stats.py",),
    "metrics.diversity": ("tests/metrics/test_metrics_diversity.py",),
    "apps.completion": ("tests/apps/test_completion.py",),
    "models.imported": ("tests/models/test_imported_models.py",),
    "models.conditional": ("tests/models/test_conditional.py",),
}


def tool_config(module: str, tests: tuple[str, ...]) -> str:
    """The [tool.mutmut] table of the working copy: one module, its own tests."""
    path = "src/steadygan/" + module.replace(".", "/") + ".py"
    quoted = ", ".join(f'"{t}"' for t in tests)
    return (
        "[tool.mutmut]\n"
        'source_paths = ["src/"]\n'
        f'only_mutate = ["{path}"]\n'
        'also_copy = ["configs/", "benchmarks/"]\n'
        f"pytest_add_cli_args_test_selection = [{quoted}]\n"
        'pytest_add_cli_args = ["-x"]\n'
        'process_isolation = "forkserver"\n'
    )


def prepare(module: str, fresh: bool) -> Path:
    work = WORK / module
    if fresh and work.exists():
        shutil.rmtree(work)
    if not (work / "mutants").exists():
        # A new copy of the code and tests (mutmut mutates a copy of this copy in mutants/).
        for name in ("src", "tests", "configs", "benchmarks"):
            if (work / name).exists():
                shutil.rmtree(work / name)
            shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        text = (ROOT / "pyproject.toml").read_text()
        text = re.sub(r"\n\[tool\.mutmut\].*?(?=\n\[|\Z)", "\n", text, flags=re.S)
        text = text.rstrip() + "\n\n" + tool_config(module, TESTS[module])
        if tomllib is not None:  # the old table must be gone whole, and the new one read back as written
            table = tomllib.loads(text)["tool"]["mutmut"]
            if table["only_mutate"] != ["src/steadygan/" + module.replace(".", "/") + ".py"] or \
                    table["pytest_add_cli_args_test_selection"] != list(TESTS[module]):
                raise SystemExit(f"could not rewrite [tool.mutmut] in {work / 'pyproject.toml'}")
        (work / "pyproject.toml").write_text(text)
    return work


def report(work: Path, module: str) -> int:
    results = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work,
                             capture_output=True, text=True)
    if results.returncode != 0:
        print(f"{module}: mutmut results failed: {results.stderr.strip()[-500:]}", file=sys.stderr)
        return 1
    counts: collections.Counter[str] = collections.Counter()
    survivors = []
    for line in results.stdout.splitlines():
        m = re.match(r"\s*(\S+__mutmut_\d+): (.+)$", line)
        if m:
            counts[m.group(2).strip()] += 1
            if m.group(2).strip() in ("survived", "no tests"):
                survivors.append(m.group(1))
    killed = counts["killed"] + counts["timeout"]
    judged = killed + counts["survived"] + counts["no tests"]
    others = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())
                       if status not in ("killed", "timeout", "survived", "no tests"))
    print(f"{module} ({', '.join(TESTS[module])}): {sum(counts.values())} mutants, {killed} killed "
          f"({counts['timeout']} by timeout), {counts['survived']} survived, {counts['no tests']} no tests"
          f"{', ' + others if others else ''}; {100 * killed / max(judged, 1):.1f}% of judged killed")
    (work / "survivors.txt").write_text("".join(s + "\n" for s in survivors))
    print(f"survivors listed in {work / 'survivors.txt'} (read one: cd {work} && "
          f"{sys.executable} -m mutmut show NAME)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", nargs="?", help="dotted module under steadygan, e.g. step or data.idx")
    parser.add_argument("--report", action="store_true", help="only report the last run")
    parser.add_argument("--fresh", action="store_true", help="discard the module's last run and start again")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", 2)), help="mutants at a time")
    parser.add_argument("--list", action="store_true", help="list the modules and their test files")
    args = parser.parse_args(argv)
    if args.list or not args.module:
        for module, tests in TESTS.items():
            print(f"{module:22s} {' '.join(tests)}")
        return 0
    if args.module not in TESTS:
        parser.error(f"unknown module {args.module!r}; --list shows the choices")
    if args.report:
        if args.fresh:
            parser.error("--fresh discards the run that --report would show; give one of them")
        if not (WORK / args.module / "mutants").exists():
            parser.error(f"no run of {args.module} to report; run it first")
        return report(WORK / args.module, args.module)
    work = prepare(args.module, args.fresh)
    with open(work / "mutants.log", "w") as log:
        run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs)], cwd=work,
                             stdout=log, stderr=subprocess.STDOUT)
    if run.returncode != 0:  # e.g. the tests fail without any mutant: nothing was judged
        print(f"{args.module}: mutmut run failed (exit {run.returncode}); see {work / 'mutants.log'}", file=sys.stderr)
        return report(work, args.module) or 1
    return report(work, args.module)


if __name__ == "__main__":
    sys.exit(main())
