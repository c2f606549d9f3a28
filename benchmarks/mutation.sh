#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut (configured in pyproject.toml, [tool.mutmut]:
# which modules, and the unit-level test files that judge each mutant). Slow (several hours on
# 2 cores for a fresh run of every module: a surviving mutant runs every test that reaches its
# function, training tests included; a later run re-tests only the functions that changed), so
# not part of CI. Prints the score per module and the surviving mutants: read them before landing
# a change. `python benchmarks/mutation_module.py MODULE` is the fast, conservative variant: one
# module judged by its own test files only.
#   bash benchmarks/mutation.sh            # run (resumes where a previous run stopped), then report
#   bash benchmarks/mutation.sh --report   # only report the last run
#   bash benchmarks/mutation.sh --recheck  # re-run the survivors (after adding tests) with a fresh
#                                          # test map, then report
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c "import mutmut" 2>/dev/null || "$PY" -m pip install -q 'mutmut>=3.8,<4'
case "${1:-}" in
  --report) ;;
  --recheck)
    # mutmut maps each function to the tests that call it once, by test name: a test that kept
    # its name but now reaches other code (a check moved from one module to another) would
    # not be run against that code's mutants. Re-record the map before judging survivors again.
    rm -f mutants/mutmut-stats.json
    mapfile -t survivors < <("$PY" -m mutmut results 2>/dev/null | awk -F': ' '$2 == "survived" || $2 == "no tests" {gsub(/ /, "", $1); print $1}')
    [ "${#survivors[@]}" -eq 0 ] || "$PY" -m mutmut run --max-children "${JOBS:-2}" "${survivors[@]}" > mutants.log 2>&1 || true ;;
  *) "$PY" -m mutmut run --max-children "${JOBS:-2}" > mutants.log 2>&1 || true ;;
esac
"$PY" -m mutmut results --all true > mutants-results.txt 2>/dev/null
"$PY" - <<'PYEOF'
import collections
import re

by_module = collections.defaultdict(collections.Counter)
survivors = []
for line in open("mutants-results.txt"):
    m = re.match(r"\s*(\S+?)\.x\S*__mutmut_\d+: (.+)$", line)
    if not m:
        continue
    module, status = m.group(1), m.group(2).strip()
    by_module[module][status] += 1
    if status == "survived":
        survivors.append(line.split(":")[0].strip())
total = collections.Counter()
# Timeouts count as killed (a mutant that makes the tests hang is caught), as in mutmut's own
# score and benchmarks/mutation_module.py.
print("| module | mutants | killed | of which timeout | survived | no tests | not run |")
print("|---|---|---|---|---|---|---|")
for module in sorted(by_module):
    c = by_module[module]
    total.update(c)
    print(f"| {module} | {sum(c.values())} | {c['killed'] + c['timeout']} | {c['timeout']} | {c['survived']} | "
          f"{c['no tests']} | {c['not checked']} |")
killed = total["killed"] + total["timeout"]
judged = killed + total["survived"] + total["no tests"]
print(f"| all | {sum(total.values())} | {killed} | {total['timeout']} | {total['survived']} | {total['no tests']} | "
      f"{total['not checked']} |")
print(f"\nkilled {killed} of {judged} judged mutants ({100 * killed / max(judged, 1):.1f}%)")
print("survivors:", *survivors, sep="\n  ")
PYEOF
