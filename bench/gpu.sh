#!/usr/bin/env bash
# GPU figures for bench/RESULTS.md: seconds per 2x2 grid per family at native size, fp16 and bf16.
# Run on a machine with a CUDA build of torch and the project installed (pip install -e .).
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python bench/bench_gpu.py --steps "${STEPS:-25}" --repeats "${REPEATS:-5}"
# Issue 21's speed figures at native sizes (random full-size weights): batching, fast paths, previews.
for family in sd1 sdxl; do
    python bench/bench_batching.py --full-size "$family" --device cuda --dtype float16 --steps "${STEPS:-25}" --rounds 2
    python bench/bench_compile.py --full-size "$family" --device cuda --dtype float16 --repeats 10
done
python bench/bench_previews.py --device cuda
