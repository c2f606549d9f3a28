#!/usr/bin/env bash
# Everything that needs a GPU, in one go (for a lent GPU machine with PyTorch installed; CI
# has no GPU): the CUDA tests, the step cost of every stabiliser, and the step against a
# hand-written loop with CUDA graphs (train.compile=reduce-overhead). Logs go to $OUT (or
# ./cuda-checks). Each part has its own time limit, and a failing part does not stop the rest.
#
#   bash benchmarks/cuda_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-cuda-checks}
mkdir -p "$out"
export PYTHONPATH=src:tests${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee "$out/device.log"
timeout 240 $PY -m pytest tests/test_cuda.py -q -p no:cacheprovider -W ignore::DeprecationWarning 2>&1 \
    | tee "$out/test_cuda.log" | tail -25
timeout 90 $PY benchmarks/step_speed.py --device cuda --rounds 5 --steps 20 2>&1 | tee "$out/step_speed.log"
timeout 200 $PY benchmarks/hand_loop.py --device cuda --compile reduce-overhead --rounds 5 --iters 20 2>&1 \
    | tee "$out/hand_loop.log"
