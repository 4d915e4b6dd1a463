"""Outpaint (Zoom Out, pans, Make Square, /outpaint): the spec, the planning of the bigger canvas
(pure geometry: the bot plans before queueing) and the builder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from generation.errors import SpecError
from generation.specs.base import (
    MAX_AREA_FACTOR,
    SHA256_PATTERN,
    PromptedSpec,
    build_spec,
    fit,
    prompted_fields,
)


class Placement(BaseModel):
    """Where a source picture is drawn in a larger canvas, in the canvas's pixels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    left: int = Field(ge=0)
    top: int = Field(ge=0)
    width: int = Field(ge=8)
    height: int = Field(ge=8)

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height


OUTPAINT_WORDS = {
    "zoom": "zoomed out",
    "pan-left": "panned left",
    "pan-right": "panned right",
    "pan-up": "panned up",
    "pan-down": "panned down",
    "square": "made square",
    "aspect": "new aspect",
}


OUTPAINT_OPERATIONS = ("zoom", "pan-left", "pan-right", "pan-up", "pan-down", "square", "aspect")
OutpaintOperation = Literal["zoom", "pan-left", "pan-right", "pan-up", "pan-down", "square", "aspect"]


class OutpaintSpec(PromptedSpec):
    """Extend a stored picture: draw `source` at `placement` in a `width` x `height` canvas and paint
    the rest to match. `operation` (zoom, pan, square, aspect) is what the user asked for; the
    placement is its resolved geometry (generation.operations.outpaint), so the job replays from the spec alone."""

    kind: Literal["outpaint"] = "outpaint"
    source: str = Field(pattern=SHA256_PATTERN)
    operation: OutpaintOperation
    placement: Placement

    def prompt_required(self) -> bool:
        return False  # the source picture says what to draw (a /blend result has no prompt)

    def files(self) -> tuple[str, ...]:
        return (*super().files(), self.source)

    def needs(self) -> frozenset[str]:
        return super().needs() | {"outpaint"}

    def operation_words(self) -> str:
        return f"{OUTPAINT_WORDS[self.operation]} to {self.width}x{self.height}"

    @model_validator(mode="after")
    def _placement_inside_canvas(self) -> Self:
        box = self.placement
        if box.right > self.width or box.bottom > self.height:
            raise ValueError(f"the placement must lie inside the {self.width}x{self.height} canvas")
        if box.width == self.width and box.height == self.height:
            raise ValueError("the placement covers the whole canvas: there is nothing to paint")
        return self


ZOOM_PRESETS = (1.5, 2.0)
MIN_ZOOM, MAX_ZOOM = 1.1, 4.0
PAN_EXTENSION = 0.5  # a pan adds half the picture's side in its direction


@dataclass(frozen=True)
class Canvas:
    width: int
    height: int
    placement: Placement


def plan_outpaint(
    operation: OutpaintOperation,
    source_size: tuple[int, int],
    max_area: int,
    *,
    zoom: float = 2.0,
    aspect: tuple[int, int] | None = None,
) -> Canvas:
    """The output size and where the source goes in it.

    Zoom keeps the picture's size and shrinks the source by `zoom`; pans, square and aspect grow the
    canvas around the source at its own scale. Either way the result is scaled down to `max_area`
    pixels at most and rounded to multiples of 8, as the model needs.
    """
    width, height = source_size
    if operation == "zoom":
        return _zoom(width, height, max_area, zoom)
    left, top, canvas_w, canvas_h = _grown_canvas(operation, width, height, aspect)
    out_w, out_h = fit(canvas_w, canvas_h, max_area)
    sx, sy = out_w / canvas_w, out_h / canvas_h
    placement = Placement(
        left=round(left * sx), top=round(top * sy), width=round(width * sx), height=round(height * sy)
    )
    return Canvas(out_w, out_h, _clamped(placement, out_w, out_h))


def _zoom(width: int, height: int, max_area: int, zoom: float) -> Canvas:
    if not MIN_ZOOM <= zoom <= MAX_ZOOM:
        raise SpecError(f"zoom must be between {MIN_ZOOM:g} and {MAX_ZOOM:g}, got {zoom:g}")
    out_w, out_h = fit(width, height, max_area)
    inner_w, inner_h = round(out_w / zoom), round(out_h / zoom)
    placement = Placement(
        left=(out_w - inner_w) // 2, top=(out_h - inner_h) // 2, width=inner_w, height=inner_h
    )
    return Canvas(out_w, out_h, placement)


def _grown_canvas(
    operation: OutpaintOperation, width: int, height: int, aspect: tuple[int, int] | None
) -> tuple[float, float, float, float]:
    """(left, top, canvas width, canvas height) in source pixels."""
    extend_x, extend_y = PAN_EXTENSION * width, PAN_EXTENSION * height
    if operation == "pan-left":
        return extend_x, 0, width + extend_x, height
    if operation == "pan-right":
        return 0, 0, width + extend_x, height
    if operation == "pan-up":
        return 0, extend_y, width, height + extend_y
    if operation == "pan-down":
        return 0, 0, width, height + extend_y
    if operation == "square":
        if abs(width - height) < 8:
            raise SpecError("the picture is already square")
        aspect = (1, 1)
    if aspect is None:
        raise SpecError("changing the aspect needs a ratio such as 16:9")
    return _centred_for_aspect(width, height, aspect)


def _centred_for_aspect(
    width: int, height: int, aspect: tuple[int, int]
) -> tuple[float, float, float, float]:
    ratio_w, ratio_h = aspect
    if ratio_w <= 0 or ratio_h <= 0 or max(ratio_w, ratio_h) / min(ratio_w, ratio_h) > 4:
        raise SpecError(f"aspect {ratio_w}:{ratio_h} is not allowed: use ratios up to 4:1, e.g. 16:9")
    target = ratio_w / ratio_h
    if abs(width / height - target) < 0.02:
        raise SpecError(f"the picture is already {ratio_w}:{ratio_h}")
    if width / height < target:  # too narrow: widen
        canvas_w = height * target
        return (canvas_w - width) / 2, 0, canvas_w, height
    canvas_h = width / target
    return 0, (canvas_h - height) / 2, width, canvas_h


def _clamped(placement: Placement, width: int, height: int) -> Placement:
    """Rounding may push the placement a pixel past the canvas: pull it back in."""
    box_w, box_h = min(placement.width, width), min(placement.height, height)
    return Placement(
        left=min(placement.left, width - box_w),
        top=min(placement.top, height - box_h),
        width=box_w,
        height=box_h,
    )


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
