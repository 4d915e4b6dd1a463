"""Variations: img2img from a stored image with the original (or a new) prompt and new seeds."""

from __future__ import annotations

import time

import torch
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from generation.imagine import (
    CancelCheck,
    ImagineResult,
    StepCallback,
    check_imagine,
    encode_prompts,
    step_reporter,
)
from generation.models import LoadedModel
from generation.schedulers import make_scheduler
from generation.specs import VarySpec


def run_vary(
    model: LoadedModel,
    spec: VarySpec,
    source: Image.Image,
    *,
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> ImagineResult:
    """One batched img2img call: every seed starts from `source` (resized to the spec's size)."""
    check_imagine(model, spec)
    started = time.perf_counter()
    pipeline = model.derive(StableDiffusionImg2ImgPipeline)  # shares the UNet, VAE and text encoder
    pipeline.scheduler = make_scheduler(spec.scheduler, model.scheduler_config)
    prompt_embeds, negative_embeds = encode_prompts(pipeline, spec)
    start = source.convert("RGB").resize((spec.width, spec.height), Image.Resampling.LANCZOS)
    output = pipeline(
        prompt_embeds=prompt_embeds,
        negative_prompt_embeds=negative_embeds,
        image=[start] * len(spec.seeds),
        strength=spec.strength,
        num_inference_steps=spec.steps,
        guidance_scale=spec.guidance,
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in spec.seeds],
        callback_on_step_end=step_reporter(on_step, should_cancel),
    )
    nsfw = list(output.nsfw_content_detected or [False] * len(output.images))
    return ImagineResult(
        spec=spec, images=list(output.images), elapsed_s=time.perf_counter() - started, nsfw=nsfw
    )
