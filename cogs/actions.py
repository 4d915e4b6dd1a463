"""What the buttons under a single picture make: specs derived from a stored result.

Whoever presses owns the new job (their tokens, not the owner's: the job service resolves them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cogs.pictures import Picture, with_prompt
from generation.specs import (
    STRONG_STRENGTH,
    SUBTLE_STRENGTH,
    JobSpec,
    RegionBox,
    outpaint_spec,
    upscale_spec,
    vary_spec,
)


def vary(
    picture: Picture,
    strength: float,
    *,
    box: RegionBox | None = None,
    mask: str | None = None,
    prompt: str | None = None,
) -> JobSpec:
    """Four variations of `picture`, in a region when `box` or `mask` is given; `prompt` (with flags)
    replaces the picture's own."""
    if prompt:
        picture = with_prompt(picture, prompt)
    return vary_spec(
        picture.spec,
        picture.image.file_hash,
        picture.size,
        picture.resolution,
        strength,
        box=box,
        mask=mask,
        seed=picture.seed,
    )


def _upscale(factor: Literal[2, 4]) -> Callable[[Picture], JobSpec]:
    return lambda p: upscale_spec(
        p.spec,
        p.image.file_hash,
        p.size,
        factor,
        "subtle",
        p.resolution,
        setup=p.upscale,
    )


def _outpaint(operation: str, zoom: float = 2.0) -> Callable[[Picture], JobSpec]:
    return lambda p: outpaint_spec(p.spec, p.image.file_hash, p.size, operation, p.resolution, zoom=zoom)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ImageAction:
    label: str
    row: int
    build: Callable[[Picture], JobSpec] | None  # None: asks for more first (Vary (Region) opens a form)
    operation: str  # what it asks of the model's family (generation.models.family_facts)


IMAGE_ACTIONS: dict[str, ImageAction] = {
    "vs": ImageAction("Vary (Subtle)", 0, lambda p: vary(p, SUBTLE_STRENGTH), "vary"),
    "vt": ImageAction("Vary (Strong)", 0, lambda p: vary(p, STRONG_STRENGTH), "vary"),
    "vr": ImageAction("Vary (Region)", 0, None, "region"),
    "u2": ImageAction("Upscale 2x", 1, _upscale(2), "upscale"),
    "u4": ImageAction("Upscale 4x", 1, _upscale(4), "upscale"),
    "z2": ImageAction("Zoom Out 2x", 2, _outpaint("zoom", 2.0), "outpaint"),
    "z15": ImageAction("Zoom Out 1.5x", 2, _outpaint("zoom", 1.5), "outpaint"),
    "sq": ImageAction("Make Square", 2, _outpaint("square"), "outpaint"),
    "pl": ImageAction("⬅️", 3, _outpaint("pan-left"), "outpaint"),
    "pr": ImageAction("➡️", 3, _outpaint("pan-right"), "outpaint"),
    "pu": ImageAction("⬆️", 3, _outpaint("pan-up"), "outpaint"),
    "pd": ImageAction("⬇️", 3, _outpaint("pan-down"), "outpaint"),
}
