#!/usr/bin/env bash
# Build the wheel and use it as a library user would: a clean virtual environment with torch
# and the wheel only (no repository on the path, no Makefile), then `steadygan methods` and a
# 20-step training run. Called by CI after the tests.
#   bash scripts/check_wheel.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/build-env"
"$work/build-env/bin/python" -m pip install -q build
"$work/build-env/bin/python" -m build --wheel --outdir "$work/dist" . > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/steadygan-*.whl)
"$PYTHON" -m venv "$work/user-env"
"$work/user-env/bin/python" -m pip install -q "torch==$TORCH_VERSION"   # the CPU (or CUDA) torch first
"$work/user-env/bin/python" -m pip install -q "$wheel"
cd "$work"   # away from the repository: only the installed wheel can be imported
"$work/user-env/bin/steadygan" methods > methods.txt
grep -q "seed-param" methods.txt
"$work/user-env/bin/steadygan" train --set data.name=ring8 --set model.arch=mlp --set model.z_dim=2 \
    --set data.toy_samples=2000 --steps 20 --no-progress --out runs > train.log
grep -q "stopped after 20 steps" train.log
"$work/user-env/bin/python" -c "import steadygan, sys; assert steadygan.__file__.startswith('$work'), steadygan.__file__; print('wheel ok:', '$(basename "$wheel")')"
