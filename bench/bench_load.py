"""Load time: the same weights as one original-layout file (A1111/ComfyUI) vs a diffusers folder,
through dreamcord's loader (`load_model`), measured side by side in one run (medians, interleaved).

    python bench/bench_load.py                    # tiny SD 1.x and SDXL models (seconds)
    python bench/bench_load.py --full             # full-size SD 1.5 and SDXL architectures, random
                                                  # weights saved in fp16 (~10 GB of disk, minutes)

The full-size models are built from the configs shipped for single files
(generation/models/original_configs), so they have exactly SD 1.5's and SDXL base's shapes.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test helpers that write the file

import torch

from generation.config import ModelConfig
from generation.models.loading import load_model
from tests.generation.original_layout import (
    conventional_tiny_sd1,
    conventional_tiny_sdxl,
    full_size_pipeline,
    save_single_file,
)


def load_seconds(source: Path, dtype: str) -> float:
    started = time.perf_counter()
    model = load_model(ModelConfig(name="bench", source=str(source)), device="cpu", dtype=dtype)
    elapsed = time.perf_counter() - started
    del model
    gc.collect()
    return elapsed


def compare(name: str, pipeline: object, folder: Path, repeats: int, dtype: str) -> None:
    started = time.perf_counter()
    pipeline.save_pretrained(folder / "folder", safe_serialization=True)  # type: ignore[attr-defined]
    file = save_single_file(pipeline, folder / "model.safetensors")
    del pipeline
    gc.collect()
    size = file.stat().st_size / 2**30
    print(f"{name}: saved both forms in {time.perf_counter() - started:.0f} s ({size:.2f} GiB each)")
    samples: dict[str, list[float]] = {"file": [], "folder": []}
    load_seconds(file, dtype)  # warm the page cache for both, so neither pays the first disk read
    load_seconds(folder / "folder", dtype)
    for _ in range(repeats):
        samples["file"].append(load_seconds(file, dtype))
        samples["folder"].append(load_seconds(folder / "folder", dtype))
    medians = {form: statistics.median(values) for form, values in samples.items()}
    print(
        f"{name}: single file {medians['file']:.2f} s vs folder {medians['folder']:.2f} s "
        f"-> ratio {medians['file'] / medians['folder']:.2f} ({repeats} repeats, {dtype})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size SD 1.5 and SDXL (slow, ~10 GB disk)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-load-") as work:
        root = Path(work)
        if args.full:
            for family in ("sd1", "sdxl"):
                compare(
                    f"full-size {family}", full_size_pipeline(family), root / family, args.repeats, "float16"
                )
        else:
            compare("tiny sd1", conventional_tiny_sd1(), root / "sd1", args.repeats, "float32")
            compare("tiny sdxl", conventional_tiny_sdxl(), root / "sdxl", args.repeats, "float32")


if __name__ == "__main__":
    main()
