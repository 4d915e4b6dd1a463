#!/usr/bin/env bash
# GPU figures for bench/RESULTS.md: seconds per 2x2 grid per family at native size, fp16 and bf16.
# Run on a machine with a CUDA build of torch and the project installed (pip install -e .).
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python bench/bench_gpu.py --steps "${STEPS:-25}" --repeats "${REPEATS:-5}"
