"""Outpaint: zoom out, pan, make square, change aspect. The bigger canvas is planned with the spec
(generation.specs.outpaint); here the start picture and the mask of what to paint are made."""

from __future__ import annotations

from PIL import Image, ImageStat

from generation.specs import OutpaintSpec

OUTPAINT_STRENGTH = 1.0  # the new area starts from pure noise; the kept part conditions it at every step


def canvas_and_mask(spec: OutpaintSpec, source: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The start picture (source at its placement on its mean colour) and the mask of the new area."""
    box = spec.placement
    placed = source.convert("RGB").resize((box.width, box.height), Image.Resampling.LANCZOS)
    mean = tuple(round(value) for value in ImageStat.Stat(placed).mean)
    start = Image.new("RGB", (spec.width, spec.height), mean)
    start.paste(placed, (box.left, box.top))
    mask = Image.new("L", start.size, 255)
    mask.paste(0, (box.left, box.top, box.right, box.bottom))
    return start, mask
