"""Load time: the same weights as one original-layout file (A1111/ComfyUI) vs a diffusers folder,
through dreamcord's loader (`load_model`), measured side by side in one run (medians, interleaved).

    python bench/bench_load.py                    # tiny SD 1.x, SDXL and Flux models (seconds)
    python bench/bench_load.py --full             # full-size SD 1.5 and SDXL architectures, random
                                                  # weights saved in fp16 (~10 GB of disk, minutes),
                                                  # and a Flux transformer of FLUX.1's width and
                                                  # 2 + 4 of its 19 + 38 blocks in bf16

A Flux file is the transformer alone: it loads with `base` = the folder, whose transformer is not read.

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
from generation.models.tiny_flux import build_tiny_flux_pipeline
from generation.operations.imagine import run_imagine
from generation.specs import ImagineSpec
from tests.generation.flux_layout import save_flux_file
from tests.generation.original_layout import (
    conventional_tiny_sd1,
    conventional_tiny_sdxl,
    full_size_pipeline,
    save_single_file,
)


def load_seconds(source: Path, dtype: str, base: Path | None = None) -> tuple[float, float]:
    """Seconds to load, and to load and render one 1-step 64-px picture (which reads every weight:
    a folder is memory-mapped, so its reads from the page cache come at the first job)."""
    started = time.perf_counter()
    config = ModelConfig(name="bench", source=str(source), base=str(base) if base else None, resolution=64)
    model = load_model(config, device="cpu", dtype=dtype)
    loaded = time.perf_counter() - started
    run_imagine(model, ImagineSpec(model="bench", prompt="a red circle", seeds=(1,), width=64, height=64,
                                   steps=1, guidance=3.5))  # fmt: skip
    first_picture = time.perf_counter() - started
    del model
    gc.collect()
    return loaded, first_picture


def compare(name: str, pipeline: object, folder: Path, repeats: int, dtype: str) -> None:
    started = time.perf_counter()
    pipeline.save_pretrained(folder / "folder", safe_serialization=True)  # type: ignore[attr-defined]
    flux = hasattr(pipeline, "transformer")
    base = folder / "folder" if flux else None
    file = folder / "model.safetensors"
    if flux:
        save_flux_file(pipeline.transformer, file)  # type: ignore[attr-defined]
    else:
        save_single_file(pipeline, file)
    del pipeline
    gc.collect()
    size = file.stat().st_size / 2**30
    print(f"{name}: saved both forms in {time.perf_counter() - started:.0f} s ({size:.2f} GiB file)")
    samples: dict[str, list[tuple[float, float]]] = {"file": [], "folder": []}
    load_seconds(file, dtype, base)  # warm the page cache for both, so neither pays the first disk read
    load_seconds(folder / "folder", dtype)
    for _ in range(repeats):
        samples["file"].append(load_seconds(file, dtype, base))
        samples["folder"].append(load_seconds(folder / "folder", dtype))
    for index, what in enumerate(("load", "load + first picture")):
        medians = {form: statistics.median(s[index] for s in values) for form, values in samples.items()}
        print(
            f"{name}, {what}: single file {medians['file']:.2f} s vs folder {medians['folder']:.2f} s "
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
            compare("flux, full width, 2+4 blocks", wide_flux(), root / "flux", args.repeats, "bfloat16")
        else:
            compare("tiny sd1", conventional_tiny_sd1(), root / "sd1", args.repeats, "float32")
            compare("tiny sdxl", conventional_tiny_sdxl(), root / "sdxl", args.repeats, "float32")
            compare("tiny flux", build_tiny_flux_pipeline(), root / "flux", args.repeats, "float32")


def wide_flux() -> object:
    """The tiny Flux pipeline with a transformer of FLUX.1's width (24 heads of 128) and a few blocks,
    in bf16: what the file reader and the rename do per block at real sizes."""
    from diffusers import FluxPipeline, FluxTransformer2DModel

    tiny = build_tiny_flux_pipeline()
    with torch.device("cpu"):
        transformer = FluxTransformer2DModel(
            in_channels=64, num_layers=2, num_single_layers=4, attention_head_dim=128, num_attention_heads=24,
            joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(16, 56, 56),
        ).to(torch.bfloat16)  # fmt: skip
    parts = {name: getattr(tiny, name) for name in tiny.components if name != "transformer"}
    return FluxPipeline(transformer=transformer, **parts)


if __name__ == "__main__":
    main()
