"""Seconds per 2x2 grid per model family at its native size, on a GPU, in fp16 and bf16: dreamcord's
`run_imagine` and the raw diffusers call side by side (medians, interleaved).

    bash bench/gpu.sh                  # or: python bench/bench_gpu.py --steps 25 --repeats 5

The models are full-size SD 1.5 and SDXL base architectures with random weights, built from the
configs shipped for single files: a GPU machine cannot download checkpoints, and the time per step
does not depend on the values of the weights.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from bench_imagine import interleaved, raw_call

from generation.config import ModelConfig
from generation.models.loading import load_model
from generation.operations.imagine import run_imagine
from generation.prompt import parse_prompt
from generation.specs import imagine_spec
from tests.generation.original_layout import full_size_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--families", nargs="+", default=["sd1", "sdxl"])
    parser.add_argument("--dtypes", nargs="+", default=["float16", "bfloat16"])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for a GPU machine")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("| family | dtype | size | ours s/grid | raw diffusers s/grid | ratio | peak GPU memory |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as work:
        for family in args.families:
            folder = Path(work) / family
            full_size_pipeline(family).save_pretrained(folder, safe_serialization=True)
            gc.collect()
            for dtype in args.dtypes:
                print(row(family, folder, dtype, args.steps, args.repeats))
                gc.collect()
                torch.cuda.empty_cache()


def row(family: str, folder: Path, dtype: str, steps: int, repeats: int) -> str:
    model = load_model(ModelConfig(name="bench", source=str(folder), steps=steps), device="cuda", dtype=dtype)
    spec = imagine_spec(parse_prompt("a red fox in the snow --seed 1"), model.config, model.resolution)
    torch.cuda.reset_peak_memory_stats()
    times = interleaved(repeats, ours=lambda: run_imagine(model, spec), raw=lambda: raw_call(model, spec))
    peak = torch.cuda.max_memory_allocated() / 2**30
    return (
        f"| {family} | {dtype} | {spec.width}x{spec.height} | {times['ours']:.2f} | {times['raw']:.2f} "
        f"| {times['ours'] / times['raw']:.3f} | {peak:.1f} GiB |"
    )


if __name__ == "__main__":
    main()
