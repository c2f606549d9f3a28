"""Plant each bug of the mutation audit in a copy of the source and check that its named test fails.

A hand-made mutation audit of the core once found nine small bugs that no test noticed (the
one about RNG restore is planted here as two: numpy's state and Python's). Each now has a test
meant to catch it; this script is the evidence that it does, as the code changes: for
every bug it copies ``src/`` to a temporary folder, makes the one edit (which must match the
current source exactly once, so a refactor that moves the code fails loudly here instead of
silently testing nothing), runs each named test alone against the copy, and expects every one
to fail. The unedited copy must pass the same tests first. Not part of CI (two to three minutes).

    python benchmarks/planted_bugs.py            # every bug; exit status 1 if any test passes
    python benchmarks/planted_bugs.py --list
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PlantedBug:
    """One small bug: replace ``old`` by ``new`` in ``src/steadygan/<file>``; ``tests`` must each fail."""

    name: str
    file: str      # under src/steadygan/, e.g. core/losses.py
    old: str       # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest node ids that must fail with the bug planted


BUGS = (
    PlantedBug("non-saturating G loss with its sign flipped", "core/losses.py",
               "    return F.softplus(-fake).mean()\n", "    return F.softplus(fake).mean()\n",
               ("tests/core/test_losses.py::test_loss_values_match_closed_forms",
                "tests/core/test_losses.py::test_one_generator_step_raises_the_discriminator_score_of_its_samples")),
    PlantedBug("EMA with decay and 1 - decay swapped", "core/ema.py",
               "weight = 1.0 - self.decay_at(step)", "weight = self.decay_at(step)",
               ("tests/core/test_ema.py::test_update_is_the_weighted_average_computed_by_hand",)),
    PlantedBug("hinge D loss with a sign flipped", "core/losses.py",
               "F.relu(1 + fake).mean()", "F.relu(1 - fake).mean()",
               ("tests/core/test_losses.py::test_loss_values_match_closed_forms",
                "tests/core/test_losses.py::test_discriminator_loss_falls_as_real_and_fake_logits_separate")),
    PlantedBug("norm clipper idle until the norm passes twice max_norm", "core/clipping.py",
               "    return torch.nn.utils.clip_grad_norm_(params, max_norm)\n",
               "    norm = global_grad_norm(params)\n"
               "    return torch.nn.utils.clip_grad_norm_(params, max_norm) if norm > 2 * max_norm else norm\n",
               ("tests/core/test_clipping.py::test_norm_clipper_near_its_limit",)),
    PlantedBug("checkpoint written straight to its final path", "files.py",
               "        write(tmp)\n        os.replace(tmp, path)\n", "        write(path)\n",
               ("tests/training/test_checkpoint.py::test_failed_write_keeps_the_previous_checkpoint_and_leaves_no_partial_file",
                "tests/test_files.py::test_atomic_text_write_replaces_whole_or_not_at_all")),
    PlantedBug("IDX magic reduced to its rank byte", "data/idx.py",
               "if zero != 0 or dtype != _UINT8 or ndim != expected_ndim:", "if ndim != expected_ndim:",
               ("tests/data/test_data.py::test_every_part_of_the_idx_magic_is_checked",)),
    PlantedBug("numpy RNG state not restored on resume", "training/checkpoint.py",
               '    np.random.set_state((n["kind"]', '    ((n["kind"]',
               ("tests/training/test_checkpoint.py::test_restored_rng_repeats_every_generator_draw_for_draw",)),
    PlantedBug("Python RNG state not restored on resume", "training/checkpoint.py",
               '    random.setstate((p["version"]', '    ((p["version"]',
               ("tests/training/test_checkpoint.py::test_restored_rng_repeats_every_generator_draw_for_draw",)),
    PlantedBug("betas equal to 1 accepted by validation", "config.py",
               "all(0 <= b < 1 for b in pc.betas)", "all(0 <= b <= 1 for b in pc.betas)",
               ("tests/test_config.py::test_bad_values_are_clear_errors",)),
    PlantedBug("report's step-time gap filter removed", "lab/report/aggregate.py",
               'if b["step"] - a["step"] == 1 and _finite', "if _finite",
               ("tests/lab/test_report.py::test_step_time_is_the_median_of_consecutive_steps",)),
)


def environment(src: Path) -> dict[str, str]:
    """The environment that imports steadygan from the copy in ``src``; exits if it does not."""
    # No .pyc files: they are keyed by mtime in whole seconds, and a same-size edit could reuse one.
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONDONTWRITEBYTECODE="1")
    # The package must come from the copy, not from the installed (editable) checkout, whose
    # path entry sys.path puts after PYTHONPATH.
    where = subprocess.run([sys.executable, "-c", "import steadygan; print(steadygan.__file__)"],
                           env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    if not Path(where).is_relative_to(src):
        raise SystemExit(f"steadygan imports from {where}, not from the planted copy under {src}")
    return env


def outcome(env: dict[str, str], test: str) -> str:
    """"passed", "failed" (the test ran and an assertion or error in its body failed it) or
    "broken" (it could not be collected or set up) for one test run in ``env``."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
                            env=env, cwd=ROOT, capture_output=True, text=True)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode == 0:
        return "passed"
    # Exit status 1 also covers an error in a fixture's set-up: that is not the test noticing the bug.
    return "failed" if result.returncode == 1 and "failed" in summary and "error" not in summary else "broken"


def plant(src: Path, bug: PlantedBug) -> None:
    """Make ``bug``'s edit in the copy under ``src``; exit if it does not match the source once."""
    path = src / "steadygan" / bug.file
    text = path.read_text()
    if text.count(bug.old) != 1:
        raise SystemExit(f"{bug.name}: the text to replace occurs {text.count(bug.old)} times in "
                         f"src/steadygan/{bug.file} (expected once); update BUGS to the current source")
    planted = text.replace(bug.old, bug.new)
    compile(planted, str(path), "exec")  # a typo in BUGS must not pass for a caught bug
    path.write_text(planted)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the bugs and their tests, run nothing")
    args = parser.parse_args()
    if args.list:
        for bug in BUGS:
            print(f"{bug.name}: {', '.join(bug.tests)}")
        return 0
    all_tests = tuple(dict.fromkeys(t for bug in BUGS for t in bug.tests))
    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp) / "clean"
        shutil.copytree(ROOT / "src", clean, ignore=shutil.ignore_patterns("__pycache__"))
        # Each test alone, as the planted runs below: one that fails alone must not pass for a catch.
        env = environment(clean)
        failing = [test for test in all_tests if outcome(env, test) != "passed"]
        if failing:
            raise SystemExit(f"on the unedited source these fail: {', '.join(failing)}; fix that first")
        print("| planted bug | named tests, each run alone | result |\n|---|---|---|")
        for i, bug in enumerate(BUGS):
            src = Path(tmp) / f"bug{i}"
            shutil.copytree(clean, src)
            plant(src, bug)
            env = environment(src)
            results = [outcome(env, test) for test in bug.tests]
            caught = all(r == "failed" for r in results)
            missed += [] if caught else [bug.name]
            names = ", ".join(f"`{t.split('::')[-1]}` ({'fails' if r == 'failed' else f'**{r}**'})"
                              for t, r in zip(bug.tests, results))
            print(f"| {bug.name} | {names} | {'caught' if caught else '**MISSED**'} |", flush=True)
    print(f"\n{len(BUGS) - len(missed)} of {len(BUGS)} planted bugs caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
