"""Upscale, by one of two methods, both tile by tile so memory stays bounded at any size:

- img2img (any model): the source enlarged to the output size (by the model's super-resolution
  network when its `upscaler` is one, else a Lanczos resize), then img2img detail passes over tiles
  of the model's native size, blended where they overlap.
- x4 (subtle mode, when the model's config names an upscaler): diffusers' StableDiffusionUpscalePipeline,
  a real 4x super-resolution model, on tiles of the source; a 2x result is the 4x one scaled down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch
from diffusers import StableDiffusionUpscalePipeline
from PIL import Image

from generation.errors import JobCancelled, ModelLoadError, SpecError
from generation.models.families import img2img_size
from generation.models.loading import LoadedModel
from generation.models.sources import hub_offline, resolve_source
from generation.operations.imagine import CancelCheck, ImagineResult, StepCallback, render_batch
from generation.operations.super_resolution import enlarge, sr_network
from generation.operations.upscale_tiles import Tile, TileCanvas, plan_tiles
from generation.specs import MAX_SEED, UpscaleSpec

log = logging.getLogger(__name__)

TILE_BATCH = 4  # tiles denoised together: bounds memory, keeps the GPU busy
X4 = 4


def run_upscale(
    model: LoadedModel,
    spec: UpscaleSpec,
    source: Image.Image,
    *,
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> ImagineResult:
    started = time.perf_counter()
    upscale = _by_x4_model if spec.method == "x4" else _by_img2img
    image = upscale(model, spec, source.convert("RGB"), on_step, should_cancel)
    nsfw = model.nsfw_flags([image])  # the whole picture, once: a tile alone may mislead the checker
    return ImagineResult(spec=spec, images=[image], elapsed_s=time.perf_counter() - started, nsfw=nsfw)


def _batches(tiles: list[Tile]) -> list[list[tuple[int, Tile]]]:
    numbered = list(enumerate(tiles))
    return [numbered[i : i + TILE_BATCH] for i in range(0, len(numbered), TILE_BATCH)]


def _tile_seeds(spec: UpscaleSpec, group: list[tuple[int, Tile]]) -> tuple[int, ...]:
    return tuple((spec.seeds[0] + index) % (MAX_SEED + 1) for index, _ in group)


def _by_img2img(
    model: LoadedModel,
    spec: UpscaleSpec,
    source: Image.Image,
    on_step: StepCallback | None,
    should_cancel: CancelCheck | None,
) -> Image.Image:
    """Enlarge (by the model's super-resolution network, or Lanczos), then redraw tile by tile
    (nothing more at strength 0)."""
    if spec.first_stage == "network":
        resized = enlarge(sr_network(model), source, (spec.width, spec.height))
    else:
        resized = source.resize((spec.width, spec.height), Image.Resampling.LANCZOS)
    if spec.strength == 0:
        return resized
    pipeline = model.task("img2img")
    canvas = TileCanvas(spec.width, spec.height)
    groups = _batches(plan_tiles(spec.width, spec.height, spec.tile_size, spec.tile_overlap))
    for group_index, group in enumerate(groups):
        left, top, right, bottom = group[0][1].box
        size = {"width": right - left, "height": bottom - top}
        tile_spec = spec.model_copy(
            update={**size, "seeds": _tile_seeds(spec, group), **tile_prompting(spec)}
        )
        drawn = render_batch(
            model,
            pipeline,
            tile_spec,
            _overall_progress(on_step, group_index, len(groups)),
            should_cancel,
            image=[resized.crop(tile.box) for _, tile in group],
            strength=spec.strength,
            **img2img_size(model.family, size["width"], size["height"]),
            check_safety=False,
        )
        for (_, tile), picture in zip(group, drawn.images, strict=True):
            canvas.add(tile, picture)
    return canvas.image()


def _by_x4_model(
    model: LoadedModel,
    spec: UpscaleSpec,
    source: Image.Image,
    on_step: StepCallback | None,
    should_cancel: CancelCheck | None,
) -> Image.Image:
    """4x super-resolution tile by tile, then scaled to the spec's size (down, for 2x)."""
    pipeline = upscaler_pipeline(model)
    width, height = (max(8, side // 8 * 8) for side in source.size)  # the UNet needs multiples of 8
    source = (
        source.resize((width, height), Image.Resampling.LANCZOS) if (width, height) != source.size else source
    )
    canvas = TileCanvas(width * X4, height * X4)
    prompt = spec.tile_prompt.strip()
    groups = _batches(plan_tiles(width, height, spec.tile_size, spec.tile_overlap, scale=X4))
    for group_index, group in enumerate(groups):
        output = pipeline(
            prompt=[prompt] * len(group),
            image=[source.crop(tile.box) for _, tile in group],
            num_inference_steps=spec.steps,
            guidance_scale=spec.guidance if prompt else 1.0,  # no prompt: no guidance pass either
            noise_level=spec.noise_level,
            generator=[torch.Generator("cpu").manual_seed(seed) for seed in _tile_seeds(spec, group)],
            callback=_legacy_step_callback(
                _overall_progress(on_step, group_index, len(groups)), should_cancel, spec.steps
            ),
        )
        for (_, tile), picture in zip(group, output.images, strict=True):
            canvas.add(tile, picture)
    return canvas.image().resize((spec.width, spec.height), Image.Resampling.LANCZOS)


def upscaler_pipeline(model: LoadedModel) -> StableDiffusionUpscalePipeline:
    """The model's configured x4 upscaler, loaded on first use with its own VAE (NOTES: the upscale
    pipeline rewrites its VAE's scaling factor, so it never gets the base model's)."""
    source = model.config.upscaler
    if source is None:
        raise SpecError(f"model {model.config.name!r} has no upscaler configured; use the img2img method")
    if "upscaler" not in model.extras:
        where, local_only = resolve_source(source, offline=hub_offline())
        try:
            pipeline = StableDiffusionUpscalePipeline.from_pretrained(
                where, dtype=model.pipeline.dtype, local_files_only=local_only
            )
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"could not load upscaler {source!r}: {error}") from error
        pipeline.set_progress_bar_config(disable=True)
        model.extras["upscaler"] = pipeline.to(model.device)
        log.info("loaded upscaler %s for %s", where, model.config.name)
    return model.extras["upscaler"]


def tile_prompting(spec: UpscaleSpec) -> dict[str, object]:
    """What each img2img tile is conditioned on: `tile_prompt`, or nothing at all (no guidance) when empty."""
    if spec.tile_prompt.strip():
        return {"prompt": spec.tile_prompt}
    return {"prompt": "", "negative_prompt": "", "guidance": 1.0}


def _overall_progress(on_step: StepCallback | None, group: int, groups: int) -> StepCallback | None:
    """Steps of one tile batch reported as steps of the whole upscale."""
    if on_step is None:
        return None
    return lambda step, total: on_step(group * total + step, groups * total)


def _legacy_step_callback(
    on_step: StepCallback | None, should_cancel: CancelCheck | None, total: int
) -> Callable[[int, Any, Any], None]:
    """The upscale pipeline still takes the old `callback(step, timestep, latents)`."""

    def callback(step: int, timestep: Any, latents: Any) -> None:
        if on_step is not None:
            on_step(step + 1, total)
        if should_cancel is not None and should_cancel():
            raise JobCancelled()

    return callback
