"""Variations (V1-V4, Vary Subtle/Strong/Region, /vary): the spec, the region box and the builders."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from generation.errors import SpecError
from generation.specs.base import (
    MAX_AREA_FACTOR,
    SHA256_PATTERN,
    PromptedSpec,
    build_spec,
    fit,
    img2img_steps,
    prompted_fields,
    steps_for_strength,
)

SUBTLE_STRENGTH, STRONG_STRENGTH, REGION_STRENGTH = 0.35, 0.7, 1.0
STRENGTH_NAMES = {SUBTLE_STRENGTH: "subtle", STRONG_STRENGTH: "strong"}

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class RegionBox(BaseModel):
    """A rectangle as fractions of the picture's width and height (0,0 = top left)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    left: Fraction
    top: Fraction
    right: Fraction
    bottom: Fraction

    @model_validator(mode="after")
    def _has_area(self) -> Self:
        if self.right - self.left < 0.01 or self.bottom - self.top < 0.01:
            raise ValueError("the box is empty: right must be more than left and bottom more than top")
        return self


class VarySpec(PromptedSpec):
    """Variations of a stored image: img2img from `source` (a file-store hash) with new seeds.

    `strength` is how much of the denoising is redone: ~0.35 keeps the composition (subtle), ~0.7
    keeps the colours and rough layout (strong). With a region (`mask`, a file-store hash of a mask
    image, or `box`) only that part is repainted and the pixels outside it are kept.
    """

    kind: Literal["vary"] = "vary"
    source: str = Field(pattern=SHA256_PATTERN)
    strength: float = Field(ge=0.05, le=1.0, allow_inf_nan=False)
    mask: str | None = Field(default=None, pattern=SHA256_PATTERN)
    box: RegionBox | None = None

    def prompt_required(self) -> bool:
        return False  # the source picture says what to draw (a /blend result has no prompt)

    @model_validator(mode="after")
    def _one_region_at_most(self) -> Self:
        if self.mask is not None and self.box is not None:
            raise ValueError("give a mask image or a box, not both")
        return self

    @property
    def has_region(self) -> bool:
        return self.mask is not None or self.box is not None

    def files(self) -> tuple[str, ...]:
        return (*super().files(), self.source, *((self.mask,) if self.mask else ()))

    def needs(self) -> frozenset[str]:
        return super().needs() | {"region" if self.has_region else "vary"}

    def operation_words(self) -> str:
        strength = STRENGTH_NAMES.get(self.strength, f"strength {self.strength:g}")
        return f"variations ({strength}{', region' if self.has_region else ''})"

    def work(self) -> float:
        if self.has_region:  # inpainting runs every step
            return super().work()
        return super().work() * img2img_steps(self.steps, self.strength) / self.steps


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
