"""Specs derived from an earlier result or an uploaded picture: what a button or /vary, /outpaint,
/upscale asks for, resolved into a complete spec (new seeds drawn here, geometry planned here)."""

from __future__ import annotations

import math
import re
import secrets
from typing import Any, Literal

from generation.errors import SpecError
from generation.imagine import GRID_SIZE, MAX_AREA_FACTOR, seeds_from
from generation.outpaint import fit, plan_outpaint
from generation.specs import (
    MAX_SEED,
    MAX_UPSCALED_SIDE,
    UPSCALE_STRENGTHS,
    OutpaintOperation,
    OutpaintSpec,
    PromptedSpec,
    RegionBox,
    UpscaleMode,
    UpscaleSpec,
    VarySpec,
    build_spec,
)


def prompted_fields(spec: PromptedSpec, *, seed: int | None = None, **changes: Any) -> dict[str, Any]:
    """What every derived spec keeps of its base: model, prompts, sampler, adapters (and size); new
    seeds from `seed` (random when None), never the base's: a derived job is a new roll."""
    fields = {name: getattr(spec, name) for name in PromptedSpec.model_fields}
    first = seed if seed is not None else secrets.randbelow(MAX_SEED + 1)
    fields["seeds"] = seeds_from(first, GRID_SIZE)
    fields.update(changes)
    return fields


def vary_spec(
    base: PromptedSpec,
    source: str,
    source_size: tuple[int, int],
    resolution: int,
    strength: float,
    *,
    mask: str | None = None,
    box: RegionBox | None = None,
    **changes: Any,
) -> VarySpec:
    """Four variations of the picture `source` (a file-store hash): same settings, new seeds, at the
    picture's own size (scaled down to what a model of native side `resolution` renders)."""
    width, height = fit(*source_size, MAX_AREA_FACTOR * resolution**2)
    fields = prompted_fields(base, **changes) | {"width": width, "height": height}
    fields["steps"] = steps_for_strength(fields["steps"], strength)
    return build_spec(VarySpec, **fields, source=source, strength=strength, mask=mask, box=box)


def steps_for_strength(steps: int, strength: float) -> int:
    """img2img runs only the last `steps * strength` steps: ask for enough that at least one runs."""
    return max(steps, math.ceil(1 / strength)) if strength > 0 else steps


def parse_box(text: str) -> RegionBox:
    """ "left, top, right, bottom" in percent of the picture (e.g. "25, 25, 75, 75") as a RegionBox."""
    parts = [part for part in re.split(r"[\s,;]+", text.strip().replace("%", "")) if part]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(0 <= value <= 100 for value in values):
        raise SpecError(
            f"the region {text!r} should be four percentages: left, top, right, bottom (e.g. 25, 25, 75, 75)"
        )
    left, top, right, bottom = (value / 100 for value in values)
    return build_spec(RegionBox, left=left, top=top, right=right, bottom=bottom)


def outpaint_spec(
    base: PromptedSpec,
    source: str,
    source_size: tuple[int, int],
    operation: OutpaintOperation,
    resolution: int,
    *,
    zoom: float = 2.0,
    aspect: tuple[int, int] | None = None,
    **changes: Any,
) -> OutpaintSpec:
    """Four outpaintings of `source`, planned for a model of native side `resolution`."""
    canvas = plan_outpaint(operation, source_size, MAX_AREA_FACTOR * resolution**2, zoom=zoom, aspect=aspect)
    fields = prompted_fields(base, **changes) | {"width": canvas.width, "height": canvas.height}
    return build_spec(OutpaintSpec, **fields, source=source, operation=operation, placement=canvas.placement)


def upscale_spec(
    base: PromptedSpec,
    source: str,
    source_size: tuple[int, int],
    factor: Literal[2, 4],
    mode: UpscaleMode,
    resolution: int,
    *,
    tile_prompt: str = "",
    upscaler: bool = False,
    **changes: Any,
) -> UpscaleSpec:
    """`source` at `factor` times its size: by the model's x4 `upscaler` for a subtle upscale when it
    has one, else redrawn with img2img in tiles of the model's native side `resolution`."""
    width, height = (_multiple_of_8(side * factor) for side in source_size)
    if max(width, height) > MAX_UPSCALED_SIDE:
        raise SpecError(
            f"a {source_size[0]}x{source_size[1]} picture upscaled {factor}x would be {width}x{height}: "
            f"at most {MAX_UPSCALED_SIDE} pixels a side (try 2x)"
        )
    fields = prompted_fields(base, **changes) | {"width": width, "height": height}
    fields["seeds"] = fields["seeds"][:1]
    by_model = upscaler and mode == "subtle"
    if not by_model:  # img2img runs only steps x strength of them
        fields["steps"] = steps_for_strength(fields["steps"], UPSCALE_STRENGTHS[mode])
    return build_spec(
        UpscaleSpec,
        **fields,
        source=source,
        factor=factor,
        mode=mode,
        strength=UPSCALE_STRENGTHS[mode],
        tile_prompt=tile_prompt,
        **_upscale_method(by_model, resolution),
    )


X4_TILE, X4_OVERLAP = 128, 32  # the x4 upscaler was trained on 128-pixel crops (512 out)


def _upscale_method(by_model: bool, resolution: int) -> dict[str, Any]:
    if by_model:
        return {"method": "x4", "tile_size": X4_TILE, "tile_overlap": X4_OVERLAP}
    return {"method": "img2img", "tile_size": resolution, "tile_overlap": _multiple_of_8(resolution // 4)}


def _multiple_of_8(value: float) -> int:
    return max(8, round(value / 8) * 8)
