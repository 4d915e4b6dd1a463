"""Masks for inpainting (region vary, outpaint): building them, and blending results back so pixels
outside the mask stay exactly the source's.

A mask is a Pillow "L" image the size of the picture: 255 = repaint, 0 = keep.
"""

from __future__ import annotations

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from generation.errors import SpecError
from generation.specs import RegionBox

REPAINT, KEEP = 255, 0
_MIN_REGION_SHARE = 0.001  # a mask covering less than 0.1 % of the picture is taken as a mistake


def box_mask(size: tuple[int, int], box: RegionBox) -> Image.Image:
    """A mask that repaints `box` (fractions of the picture) and keeps the rest."""
    width, height = size
    mask = Image.new("L", size, KEEP)
    corners = (
        round(box.left * width),
        round(box.top * height),
        round(box.right * width) - 1,
        round(box.bottom * height) - 1,
    )
    ImageDraw.Draw(mask).rectangle(corners, fill=REPAINT)
    return mask


def mask_from_upload(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A user's mask image, fitted to `size`: white (or, in an image with transparency, the transparent
    part) is what to repaint. Anything between is rounded to repaint or keep."""
    if image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info:
        alpha = image.convert("RGBA").getchannel("A")
        lowest = alpha.getextrema()[0]  # one band: (min, max)
        transparent_somewhere = isinstance(lowest, int) and lowest < 255
        grey = ImageChops.invert(alpha) if transparent_somewhere else image.convert("L")
    else:
        grey = image.convert("L")
    fitted = grey.resize(size, Image.Resampling.BILINEAR).point(lambda v: REPAINT if v >= 128 else KEEP)
    check_mask(fitted)
    return fitted


def check_mask(mask: Image.Image) -> None:
    share = sum(mask.histogram()[REPAINT:]) / (mask.width * mask.height)
    if share < _MIN_REGION_SHARE:
        raise SpecError("the mask is empty: paint the area to change in white (the rest black)")


def grow(mask: Image.Image, pixels: int) -> Image.Image:
    """The mask widened by `pixels` in every direction."""
    if pixels <= 0:
        return mask
    return mask.filter(ImageFilter.MaxFilter(2 * pixels + 1))


def blend_alpha(mask: Image.Image, margin: int) -> Image.Image:
    """How much of the new picture to take per pixel: 1 inside the mask, a ramp `2 * margin` wide
    around it, exactly 0 beyond (a box blur has bounded support, unlike a Gaussian)."""
    return grow(mask, margin).filter(ImageFilter.BoxBlur(margin)) if margin > 0 else mask


def keep_outside(
    original: Image.Image, generated: Image.Image, mask: Image.Image, margin: int
) -> Image.Image:
    """`generated` inside the mask, `original` untouched beyond `2 * margin` of it, blended between."""
    return Image.composite(generated.convert("RGB"), original.convert("RGB"), blend_alpha(mask, margin))
