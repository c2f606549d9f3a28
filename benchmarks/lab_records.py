"""Keep a lab's results in the repository, without checkpoints or samples, so that a lab longer
than one machine's lease goes on where it stopped on the next machine, and so that every table
in BENCHMARKS.md can be recomputed from the runs behind it.

    python benchmarks/lab_records.py save lab/health-corpus       # -> benchmarks/records/health-corpus
    python benchmarks/lab_records.py restore health-corpus        # -> lab/health-corpus
    benchmarks/lab.sh health-corpus                               # skips the restored runs

A finished run is kept as its config.yaml, stats.jsonl (gzipped in the records: a 1,000-step run
logs about 350 kB) and done.json: what `steadygan report`, benchmarks/health_eval.py and
benchmarks/heal_table.py read, and what `compare` needs to skip it.
A run without done.json is not kept: its checkpoint is not kept either, so on the next machine
it trains again from its first step. A restore never overwrites a file that is already there.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "benchmarks" / "records"
LAB = ROOT / "lab"
PLAN_FILES = ("compare.yaml", "tune.yaml")
RUN_FILES = ("config.yaml", "stats.jsonl", "done.json")


def finished_runs(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.rglob("done.json"))


def save(lab_folder: Path) -> int:
    lab_folder = lab_folder.resolve()
    try:
        name = lab_folder.relative_to(LAB.resolve())
    except ValueError:
        raise SystemExit(f"error: {lab_folder} is not under {LAB}") from None
    copied = 0
    for plan in (p for f in PLAN_FILES for p in lab_folder.rglob(f)):
        _copy(plan, RECORDS / name / plan.relative_to(lab_folder), overwrite=True)
    for run in finished_runs(lab_folder):
        for f in RUN_FILES:
            if (run / f).exists():
                _copy(run / f, RECORDS / name / run.relative_to(lab_folder) / f, overwrite=True)
        copied += 1
    print(f"saved {copied} finished runs of {lab_folder} to {RECORDS / name}")
    return 0


def restore(name: str) -> int:
    source = RECORDS / name
    if not source.is_dir():
        raise SystemExit(f"error: no records named {name!r} (have: {', '.join(sorted(_names())) or 'none'})")
    restored = 0
    # done.json last in each run: a restore cut short must not leave a run marked done without its stats
    for path in sorted((p for p in source.rglob("*") if p.is_file()), key=lambda p: (p.parent, p.name == "done.json")):
        restored += _copy(path, LAB / name / path.relative_to(source), overwrite=False)
    print(f"restored {restored} files of {source} to {LAB / name}")
    return 0


def _copy(src: Path, dst: Path, overwrite: bool) -> int:
    """Copy one file; stats.jsonl is gzipped on the way into the records and back out of them."""
    if src.name == "stats.jsonl":
        dst = dst.with_name("stats.jsonl.gz")
    elif src.name == "stats.jsonl.gz":
        dst = dst.with_name("stats.jsonl")
    if dst.exists() and not overwrite:
        return 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    if src.suffix == ".gz":
        with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    elif dst.suffix == ".gz":
        with open(src, "rb") as fin, gzip.GzipFile(tmp, "wb", mtime=0) as fout:  # mtime 0: same bytes, no diff
            shutil.copyfileobj(fin, fout)
    else:
        shutil.copyfile(src, tmp)
    tmp.replace(dst)  # a restore cut short leaves no half file that compare would trust
    return 1


def _names() -> list[str]:
    return [p.name for p in RECORDS.iterdir() if p.is_dir()] if RECORDS.is_dir() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("save", help="copy a lab folder's finished runs into benchmarks/records").add_argument(
        "folder", type=Path, help="a folder under lab/, e.g. lab/health-corpus")
    sub.add_parser("restore", help="copy records back under lab/").add_argument(
        "name", help="a folder under benchmarks/records, e.g. health-corpus")
    args = parser.parse_args()
    return save(args.folder) if args.command == "save" else restore(args.name)


if __name__ == "__main__":
    sys.exit(main())
