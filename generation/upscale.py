"""Upscale: a high-quality resize, then img2img detail passes tile by tile, blended where tiles overlap.

Each tile is the model's native size, so memory is that of one batch of native-size images whatever
the output size; overlapping tiles are weighted by ramps that fall to zero at their inner edges, so
no tile border shows as a step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from generation.imagine import CancelCheck, ImagineResult, StepCallback, render_batch
from generation.models import LoadedModel
from generation.specs import MAX_SEED, UpscaleSpec

TILE_BATCH = 4  # tiles denoised together: bounds memory, keeps the GPU busy
Box = tuple[int, int, int, int]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering `length` with at least `overlap` shared pixels, spread evenly
    so the last tile ends exactly at the edge."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(index * (length - tile) / (count - 1)) for index in range(count)]


@dataclass(frozen=True)
class Tile:
    box: Box  # left, top, right, bottom
    weights: np.ndarray  # (height, width, 1): how much this tile counts at each of its pixels


def _axis(length: int, tile: int, overlap: int) -> list[tuple[int, np.ndarray]]:
    """(start, blend ramp) of each tile along one axis: ramps only where a neighbour overlaps."""
    tile = min(tile, length)
    starts = tile_starts(length, tile, overlap)
    ends = [start + tile for start in starts]
    return [
        (
            start,
            _ramp(
                tile, ends[i - 1] - start if i > 0 else 0, end - starts[i + 1] if i + 1 < len(starts) else 0
            ),
        )
        for i, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]


def plan_tiles(width: int, height: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles row by row, each with its blend weights."""
    tiles = []
    for top, down in _axis(height, tile, overlap):
        for left, across in _axis(width, tile, overlap):
            box = (left, top, left + len(across), top + len(down))
            tiles.append(Tile(box, np.outer(down, across)[..., None]))
    return tiles


def _ramp(size: int, before: int, after: int) -> np.ndarray:
    """1 in the middle, rising over `before` pixels at the start and falling over `after` at the end."""
    position = np.arange(size, dtype=np.float64) + 0.5
    weight = np.ones(size)
    if before > 0:
        weight = np.minimum(weight, position / before)
    if after > 0:
        weight = np.minimum(weight, (size - position) / after)
    return weight


def run_upscale(
    model: LoadedModel,
    spec: UpscaleSpec,
    source: Image.Image,
    *,
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> ImagineResult:
    """Resize `source` to the spec's size, then redraw it tile by tile (nothing more at strength 0)."""
    started = time.perf_counter()
    resized = source.convert("RGB").resize((spec.width, spec.height), Image.Resampling.LANCZOS)
    if spec.strength == 0:
        return ImagineResult(
            spec=spec, images=[resized], elapsed_s=time.perf_counter() - started, nsfw=[False]
        )
    tiles = plan_tiles(spec.width, spec.height, spec.tile_size, spec.tile_overlap)
    pipeline = model.derive(StableDiffusionImg2ImgPipeline)
    total = np.zeros((spec.height, spec.width, 3))
    weight_sum = np.zeros((spec.height, spec.width, 1))
    nsfw = False
    numbered = list(enumerate(tiles))
    groups = [numbered[i : i + TILE_BATCH] for i in range(0, len(numbered), TILE_BATCH)]  # 3.11: no batched
    for group_index, group in enumerate(groups):
        tile_seeds = tuple((spec.seeds[0] + index) % (MAX_SEED + 1) for index, _ in group)
        left, top, right, bottom = group[0][1].box
        tile_spec = spec.model_copy(
            update={
                "width": right - left,
                "height": bottom - top,
                "seeds": tile_seeds,
                **tile_prompting(spec),
            }
        )
        drawn = render_batch(
            model,
            pipeline,
            tile_spec,
            _overall_progress(on_step, group_index, len(groups)),
            should_cancel,
            image=[resized.crop(tile.box) for _, tile in group],
            strength=spec.strength,
        )
        nsfw = nsfw or any(drawn.nsfw)
        for (_, tile), picture in zip(group, drawn.images, strict=True):
            left, top, right, bottom = tile.box
            total[top:bottom, left:right] += tile.weights * np.asarray(picture, dtype=np.float64)
            weight_sum[top:bottom, left:right] += tile.weights
    blended = np.clip(np.rint(total / weight_sum), 0, 255).astype(np.uint8)
    image = Image.fromarray(blended, "RGB")
    return ImagineResult(spec=spec, images=[image], elapsed_s=time.perf_counter() - started, nsfw=[nsfw])


def tile_prompting(spec: UpscaleSpec) -> dict[str, object]:
    """What each tile is conditioned on: `tile_prompt`, or nothing at all (guidance off) when empty."""
    if spec.tile_prompt.strip():
        return {"prompt": spec.tile_prompt}
    return {"prompt": "", "negative_prompt": "", "guidance": 1.0}


def _overall_progress(on_step: StepCallback | None, group: int, groups: int) -> StepCallback | None:
    """Steps of one tile batch reported as steps of the whole upscale."""
    if on_step is None:
        return None
    return lambda step, total: on_step(group * total + step, groups * total)
