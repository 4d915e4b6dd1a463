"""Variations: img2img from a stored image with the original (or a new) prompt and new seeds, or
inpainting of one region of it (a mask image or a box) with everything else kept."""

from __future__ import annotations

from typing import Any

from PIL import Image

from generation.models.families import img2img_size
from generation.models.loading import LoadedModel
from generation.operations.imagine import CancelCheck, ImagineResult, StepCallback, render_batch
from generation.operations.inpaint import run_inpaint
from generation.operations.masks import box_mask, mask_from_upload
from generation.specs import VarySpec


def run_vary(
    model: LoadedModel,
    spec: VarySpec,
    source: Image.Image,
    *,
    mask: Image.Image | None = None,
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> ImagineResult:
    """One batched call: every seed starts from `source` (resized to the spec's size).

    `mask` is the uploaded mask image named by `spec.mask` (white = repaint); a `spec.box` is drawn here.
    """
    start = source.convert("RGB").resize((spec.width, spec.height), Image.Resampling.LANCZOS)
    if spec.has_region:
        region = region_mask(spec, mask)
        return run_inpaint(
            model, spec, start, region, spec.strength, on_step=on_step, should_cancel=should_cancel
        )
    pipeline = model.task("img2img")  # shares the UNet, VAE and text encoder
    inputs: dict[str, Any] = {"image": [start] * len(spec.seeds), "strength": spec.strength}
    inputs |= img2img_size(model.family, spec.width, spec.height)
    return render_batch(model, pipeline, spec, on_step, should_cancel, **inputs)


def region_mask(spec: VarySpec, uploaded: Image.Image | None) -> Image.Image:
    size = (spec.width, spec.height)
    if spec.box is not None:
        return box_mask(size, spec.box)
    if uploaded is None:
        raise ValueError("a VarySpec with a mask needs the mask image")
    return mask_from_upload(uploaded, size)
