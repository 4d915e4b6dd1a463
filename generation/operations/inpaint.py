"""Inpainting shared by region vary and outpaint: repaint a mask, keep every other pixel.

Runs `StableDiffusionInpaintPipeline` derived from the base model. With an ordinary 4-channel UNet it
works in blend mode (the kept latents are re-noised from the source at every step), so the new part is
conditioned on the old; afterwards the source's own pixels are blended back outside the mask, because
the VAE round trip alone would shift them slightly.
"""

from __future__ import annotations

from PIL import Image

from generation.models.loading import LoadedModel
from generation.operations.fill import FILL_GUIDANCE, fill_pipeline
from generation.operations.imagine import CancelCheck, ImagineResult, StepCallback, render_batch
from generation.operations.masks import grow, keep_outside
from generation.operations.outpaint import OUTPAINT_STRENGTH, canvas_and_mask
from generation.specs import OutpaintSpec, PromptedSpec


def seam_margin(model: LoadedModel) -> int:
    """Width in pixels of the blend between kept and repainted pixels: one latent cell."""
    return int(model.pipeline.vae_scale_factor)


def run_inpaint(
    model: LoadedModel,
    spec: PromptedSpec,
    start: Image.Image,
    mask: Image.Image,
    strength: float,
    *,
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> ImagineResult:
    """One batched inpaint of `start` (at the spec's size) under `mask`, one generator per seed."""
    if start.size != (spec.width, spec.height) or mask.size != start.size:
        raise ValueError(f"start {start.size} and mask {mask.size} must be {spec.width}x{spec.height}")
    pipeline = model.task("inpaint")
    if model.config.fill:  # a Flux Fill model paints masks with its own transformer and guidance
        pipeline = fill_pipeline(model)
        spec = spec.model_copy(update={"guidance": FILL_GUIDANCE})
    margin = seam_margin(model)
    # Repaint beyond the blend ramp (2 margins) plus one latent cell, which the pipeline's
    # nearest-neighbour downscale of the mask may otherwise drop at the border.
    repaint = grow(mask, 3 * margin)
    count = len(spec.seeds)
    result = render_batch(
        model,
        pipeline,
        spec,
        on_step,
        should_cancel,
        image=[start] * count,
        mask_image=[repaint] * count,
        strength=strength,
        width=spec.width,
        height=spec.height,
        check_safety=False,
    )
    result.images = [keep_outside(start, image, mask, margin) for image in result.images]
    result.nsfw = model.nsfw_flags(result.images)  # the finished pictures, kept part included
    return result


def run_outpaint(
    model: LoadedModel,
    spec: OutpaintSpec,
    source: Image.Image,
    *,
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> ImagineResult:
    """Paint the canvas around the placed source, one picture per seed."""
    start, mask = canvas_and_mask(spec, source)
    return run_inpaint(
        model, spec, start, mask, OUTPAINT_STRENGTH, on_step=on_step, should_cancel=should_cancel
    )
