#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut (configured in pyproject.toml, [tool.mutmut]).
# Slow (about an hour on 2 cores for a fresh run; later runs re-test only changed functions),
# so not part of CI. Prints the score and the surviving mutants; read them before landing a change.
#   bash benchmarks/mutation.sh            # run (resumes where a previous run stopped)
#   bash benchmarks/mutation.sh --report   # only summarise the last run
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m pip install -q 'mutmut>=3.8,<4' 2>/dev/null || "$PY" -m pip install -q -e '.[mutation]'
if [ "${1:-}" != "--report" ]; then
  "$PY" -m mutmut run --max-children "${JOBS:-2}" > mutants.log 2>&1 || true
fi
"$PY" -m mutmut results --all true > mutants-results.txt 2>/dev/null || "$PY" -m mutmut results > mutants-results.txt
"$PY" - <<'PYEOF'
import collections, re
counts = collections.Counter()
survivors = []
for line in open("mutants-results.txt"):
    m = re.match(r"\s*(\S+): (.+)$", line)
    if not m:
        continue
    name, status = m.groups()
    counts[status.strip()] += 1
    if status.strip() == "survived":
        survivors.append(name)
killed = counts.get("killed", 0)
total = sum(counts.values())
print(dict(counts))
scored = killed + counts.get("survived", 0) + counts.get("no tests", 0)
print(f"killed {killed} of {scored} mutants with a verdict ({100 * killed / max(scored, 1):.1f}%); {total} listed")
print("survivors:", *survivors, sep="\n  ")
PYEOF
