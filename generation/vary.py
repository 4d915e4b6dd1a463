"""Variations: img2img from a stored image with the original (or a new) prompt and new seeds."""

from __future__ import annotations

from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from generation.imagine import CancelCheck, ImagineResult, StepCallback, render_batch
from generation.models import LoadedModel
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
    pipeline = model.derive(StableDiffusionImg2ImgPipeline)  # shares the UNet, VAE and text encoder
    start = source.convert("RGB").resize((spec.width, spec.height), Image.Resampling.LANCZOS)
    return render_batch(
        model, pipeline, spec, on_step, should_cancel, image=[start] * len(spec.seeds), strength=spec.strength
    )
