"""The per-model fast paths against the eager path, side by side in one run (medians, interleaved):
one denoising step (the denoiser's forward on a CFG batch of a 2x2 grid) with channels_last, fused
QKV projections, torch.compile (inductor, dynamic shapes), and compile with channels_last; and the
largest pixel difference of a whole grid against eager.

    python bench/bench_compile.py                  # bundled model, 128 px
    python bench/bench_compile.py --full-size      # SD 1.5's architecture at 512 px (random weights)
    python bench/bench_compile.py --full-size sdxl --device cuda --dtype float16   # bench/gpu.sh
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
import torch
from bench_batching import chosen_model, model_arguments, set_up

from generation.models.loading import LoadedModel, load_model
from generation.operations.imagine import run_imagine
from generation.specs import ImagineSpec

VARIANTS: dict[str, dict[str, bool]] = {
    "eager": {},
    "channels_last": {"channels_last": True},
    "fuse_qkv": {"fuse_qkv": True},
    "compile": {"compile": True},
    "compile + channels_last": {"compile": True, "channels_last": True},
}


def step_call(model: LoadedModel, side: int) -> Callable[[], object]:
    """One step's denoiser call: a 2x2 grid with CFG (8 latents)."""
    unet = model.pipeline.unet
    generator = torch.Generator().manual_seed(0)
    scale = model.pipeline.vae_scale_factor
    where = {"device": model.device, "dtype": unet.dtype}
    latents = torch.randn(8, unet.config.in_channels, side // scale, side // scale, generator=generator).to(
        **where
    )
    text = torch.randn(8, 77, unet.config.cross_attention_dim, generator=generator).to(**where)
    timestep = torch.tensor(500, device=model.device)
    extra: dict[str, object] = {}
    if unet.config.addition_embed_type == "text_time":  # SDXL: pooled text and size conditioning
        extra = {"added_cond_kwargs": {"text_embeds": torch.randn(8, 1280).to(**where),
                                       "time_ids": torch.tensor([[side, side, 0, 0, side, side]] * 8).to(**where)}}  # fmt: skip

    @torch.no_grad()
    def call() -> object:
        output = unet(latents, timestep, encoder_hidden_states=text, **extra).sample
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        return output

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    model_arguments(parser)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    set_up(args)
    with tempfile.TemporaryDirectory() as folder:
        base = chosen_model(args, Path(folder))
        side = base.resolution or 64
        models = {
            label: load_model(dataclasses.replace(base, **options), device=args.device, dtype=args.dtype)
            for label, options in VARIANTS.items()
        }
        calls = {label: step_call(model, side) for label, model in models.items()}
        first: dict[str, float] = {}
        for label, call in calls.items():  # the first call compiles
            started = time.perf_counter()
            call()
            first[label] = time.perf_counter() - started
        times: dict[str, list[float]] = {label: [] for label in calls}
        for _ in range(args.repeats):
            for label, call in calls.items():
                started = time.perf_counter()
                call()
                times[label].append(time.perf_counter() - started)
        seeds = (
            (1,) if args.full_size and args.device == "cpu" else (1, 2, 3, 4)
        )  # full size: one picture (a VAE decode is 17 s here)
        spec = ImagineSpec(model=base.name, prompt="a red circle", seeds=seeds, width=side, height=side,
                           steps=2 if args.full_size else 20, guidance=7.0)  # fmt: skip
        eager = np.stack([np.asarray(i, dtype=np.int16) for i in run_imagine(models["eager"], spec).images])
    print(f"\n{base.name}, {side} px: one denoising step of a 2x2 grid with CFG, median of {args.repeats}")
    print("| variant | first call (compiles) | per step | eager / this | grid pixels vs eager (max) |")
    print("| --- | --- | --- | --- | --- |")
    eager_step = statistics.median(times["eager"])
    for label, model in models.items():
        step = statistics.median(times[label])
        pictures = np.stack([np.asarray(i, dtype=np.int16) for i in run_imagine(model, spec).images])
        print(
            f"| {label} | {first[label]:.2f} s | {step * 1000:.1f} ms | {eager_step / step:.2f} | {int(np.abs(pictures - eager).max())}/255 |"
        )


if __name__ == "__main__":
    main()
