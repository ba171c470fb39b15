#!/usr/bin/env bash
# One device session, prepared: the device-parametrised engine tests on CUDA, then benchmarks/gpu.py.
# Results go to $OUT (the device tool's folder that comes back; /tmp/gpu-out elsewhere).
# Usage on a GPU machine (its image has CUDA torch and transformers; the project runs from src/):
#   bash scripts/gpu_check.sh
# Tried on the CPU first with small sizes:
#   CONFIGS=qwen2-0.5b LENGTHS="256" LONG= DEVICE=cpu bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
# pure-Python packages the device image lacks (platformdirs), carried in .devdeps/ (pip install --target .devdeps platformdirs)
[ -d .devdeps ] && export PYTHONPATH=$PYTHONPATH:.devdeps
configs=${CONFIGS:-llama3-8b qwen2-0.5b}
lengths=${LENGTHS:-4096 8192 16384 32768}
long=${LONG-131072}
device=${DEVICE:-auto}

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
} > "$out/device.txt" 2>&1

if python -c "import pytest" 2>/dev/null; then
  # the engine tests take a device parameter: on this machine they run on cpu and on cuda
  timeout "${TEST_S:-180}" python -m pytest -q -p no:cacheprovider \
    tests/capture/test_dtypes.py tests/capture/test_stash.py tests/capture/test_sources.py \
    tests/capture/test_predictions.py -k "cuda or float64 or saved" > "$out/tests.txt" 2>&1
  echo "tests exit $?" >> "$out/tests.txt"
else
  echo "pytest is not installed here: tests not run" > "$out/tests.txt"
fi

long_option=()
[ -n "$long" ] && long_option=(--long "$long")
# shellcheck disable=SC2086
timeout "${BENCH_S:-420}" python benchmarks/gpu.py --device "$device" --configs $configs --lengths $lengths \
  "${long_option[@]}" --warmup 1 --repeats 3 --json "$out/gpu.json" > "$out/gpu.txt" 2>&1
echo "benchmark exit $?" >> "$out/gpu.txt"
tail -n 30 "$out"/*.txt
