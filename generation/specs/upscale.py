"""Upscale (U 2x/4x, /upscale): the spec and its builder (tiles of img2img, or the model's x4 upscaler)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from generation.errors import SpecError
from generation.specs.base import (
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_SIDE,
    MEGAPIXEL,
    MIN_SIDE,
    SHA256_PATTERN,
    PromptedSpec,
    build_spec,
    img2img_steps,
    prompted_fields,
    steps_for_strength,
)

UpscaleMode = Literal["subtle", "creative"]
UPSCALE_MODES: tuple[str, ...] = UpscaleMode.__args__  # type: ignore[attr-defined]
UPSCALE_STRENGTHS: dict[str, float] = {"subtle": 0.2, "creative": 0.4}


@dataclass(frozen=True)
class UpscaleSetup:
    """What a model's config says about upscaling (generation.config.upscale_setup): what its
    `upscaler` is, and the img2img strength of each mode's detail passes (0: none, the first stage alone)."""

    upscaler: Literal["x4", "network"] | None = None
    strengths: Mapping[str, float] = field(default_factory=lambda: dict(UPSCALE_STRENGTHS))


UpscaleMethod = Literal["img2img", "x4"]
MAX_UPSCALED_SIDE = 4096
UPSCALE_PROMPT = "an upscaled picture"  # for uploads: tiles ignore the prompt (UpscaleSpec); captions show it


class UpscaleSpec(PromptedSpec):
    """A larger, sharper `source`: resized to `width` x `height`, then redrawn tile by tile with
    img2img at `strength` (low for subtle, higher for creative). Tiles of `tile_size` pixels overlap by
    `tile_overlap` and are blended, so memory stays that of one tile batch whatever the output size.

    Tiles are conditioned on `tile_prompt`, not on the scene's prompt: a tile shows only part of the
    scene, and the whole scene's prompt paints a small copy of the scene into every tile (measured on
    the bundled model: a circle per tile). Empty means unconditioned (and no guidance pass).
    """

    kind: Literal["upscale"] = "upscale"
    source: str = Field(pattern=SHA256_PATTERN)
    factor: Literal[2, 4]
    mode: UpscaleMode
    strength: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)  # 0: resize only
    width: int = Field(ge=MIN_SIDE, le=MAX_UPSCALED_SIDE, multiple_of=8)
    height: int = Field(ge=MIN_SIDE, le=MAX_UPSCALED_SIDE, multiple_of=8)
    seeds: tuple[Annotated[int, Field(ge=0, le=MAX_SEED)], ...] = Field(min_length=1, max_length=1)
    tile_size: int = Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    tile_overlap: int = Field(ge=0, le=MAX_SIDE // 2, multiple_of=8)
    tile_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    # x4: the model's configured super-resolution upscaler (tile_size in source pixels; strength unused).
    method: UpscaleMethod = "img2img"
    noise_level: int = Field(default=20, ge=0, le=350)  # x4 only: noise added to the low-res input
    # img2img only: how the source is first enlarged, by Lanczos or the model's super-resolution network.
    first_stage: Literal["lanczos", "network"] = "lanczos"

    def prompt_required(self) -> bool:
        return False  # the source picture says what to draw (a /blend result has no prompt)

    def files(self) -> tuple[str, ...]:
        return (*super().files(), self.source)

    def needs(self) -> frozenset[str]:
        return super().needs() | {"upscale"}

    def operation_words(self) -> str:
        return f"upscaled {self.factor}x ({self.mode})"

    def work(self) -> float:
        steps = self.steps if self.method == "x4" else img2img_steps(self.steps, self.strength)
        return steps * self.width * self.height / MEGAPIXEL * 1.8  # overlapping tiles: ~1.8x the pixels

    @model_validator(mode="after")
    def _overlap_below_tile(self) -> Self:
        if self.tile_overlap >= self.tile_size:
            raise ValueError("tile_overlap must be smaller than tile_size")
        return self


def upscale_spec(
    base: PromptedSpec,
    source: str,
    source_size: tuple[int, int],
    factor: Literal[2, 4],
    mode: UpscaleMode,
    resolution: int,
    *,
    tile_prompt: str = "",
    setup: UpscaleSetup | None = None,
    **changes: Any,
) -> UpscaleSpec:
    """`source` at `factor` times its size: by the model's x4 `upscaler` for a subtle upscale when it
    has one, else enlarged (by its super-resolution network if it has one, else Lanczos) and redrawn
    with img2img in tiles of the model's native side `resolution`."""
    width, height = (_multiple_of_8(side * factor) for side in source_size)
    if max(width, height) > MAX_UPSCALED_SIDE:
        raise SpecError(
            f"a {source_size[0]}x{source_size[1]} picture upscaled {factor}x would be {width}x{height}: "
            f"at most {MAX_UPSCALED_SIDE} pixels a side (try 2x)"
        )
    fields = prompted_fields(base, **changes) | {"width": width, "height": height}
    fields["seeds"] = fields["seeds"][:1]
    setup = setup or UpscaleSetup()
    upscaler, strength = setup.upscaler, setup.strengths[mode]
    by_model = upscaler == "x4" and mode == "subtle"
    if not by_model:  # img2img runs only steps x strength of them
        fields["steps"] = steps_for_strength(fields["steps"], strength) if strength else 1
    return build_spec(
        UpscaleSpec,
        **fields,
        source=source,
        factor=factor,
        mode=mode,
        strength=strength,
        tile_prompt=tile_prompt,
        first_stage="network" if upscaler == "network" else "lanczos",
        **_upscale_method(by_model, resolution),
    )


X4_TILE, X4_OVERLAP = 128, 32  # the x4 upscaler was trained on 128-pixel crops (512 out)


def _upscale_method(by_model: bool, resolution: int) -> dict[str, Any]:
    if by_model:
        return {"method": "x4", "tile_size": X4_TILE, "tile_overlap": X4_OVERLAP}
    return {"method": "img2img", "tile_size": resolution, "tile_overlap": _multiple_of_8(resolution // 4)}


def _multiple_of_8(value: float) -> int:
    return max(8, round(value / 8) * 8)
