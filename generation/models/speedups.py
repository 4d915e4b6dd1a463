"""Per-model fast paths, off unless the model's config asks (generation.config.ModelConfig):
- `channels_last`: the denoiser's and VAE's convolutions in NHWC, which GPU kernels (and oneDNN on
  CPUs) run faster;
- `fuse_qkv`: one projection for attention's query, key and value where diffusers offers it. LoRAs
  patch the separate projections, so a model with it refuses LoRAs in one line (adapters.py);
- `compile`: `torch.compile` of the denoiser in place (`Module.compile`, so LoRA layers and task
  pipelines sharing it keep working), with dynamic shapes so aspect ratios do not each recompile;
  the worker warms it up at start and inductor keeps its cache under the data folder.
bench/bench_compile.py measures each against the eager path.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from generation.config import ModelConfig

log = logging.getLogger(__name__)


def denoiser_of(pipeline: Any) -> Any:
    """The UNet (SD 1.x, SDXL) or transformer (Flux) that runs at every step (diffusers' models are
    untyped here: their `to` takes memory formats torch's stubs do not list)."""
    return pipeline.unet if getattr(pipeline, "unet", None) is not None else pipeline.transformer


def apply_speedups(config: ModelConfig, pipeline: Any) -> None:
    denoiser = denoiser_of(pipeline)
    if config.fuse_qkv:
        parts: tuple[Any, ...] = (denoiser, pipeline.vae)
        for part in parts:
            if hasattr(part, "fuse_qkv_projections"):
                part.fuse_qkv_projections()
            else:
                log.info(
                    "model %s: %s has no fused projections in diffusers", config.name, type(part).__name__
                )
    if config.channels_last:
        denoiser.to(memory_format=torch.channels_last)
        pipeline.vae.to(memory_format=torch.channels_last)
    if config.compile:
        denoiser.compile(dynamic=True)
        log.info("model %s: its denoiser is compiled at its first run (minutes, then cached)", config.name)
