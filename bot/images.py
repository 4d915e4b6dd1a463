"""Image bytes for Discord: grids from stored images, and re-encoding to fit a channel's upload limit."""

from __future__ import annotations

import io

from PIL import Image

from generation.pictures.grid import compose_grid
from generation.pictures.provenance import encode_with_parameters, parameters_of

JPEG_QUALITIES = (92, 85, 75, 60)
SHRINK_STEP = 0.75


def load_png(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def grid_png(images: list[bytes]) -> bytes:
    """One PNG: the image itself, or a grid of several carrying the first one's infotext (as A1111's
    grids do: its seed is the first of the grid's)."""
    if len(images) == 1:
        return images[0]
    grid = compose_grid([load_png(data) for data in images])
    return encode_with_parameters(grid, "PNG", parameters_of(images[0]))


HIDDEN_NOTE = "hidden by the safety filter"


def hidden_png(width: int, height: int) -> bytes:
    """What is shown instead of a picture the safety checker flagged: grey, with a short note."""
    from PIL import ImageDraw

    placeholder = Image.new("RGB", (width, height), (96, 96, 96))
    ImageDraw.Draw(placeholder).text((4, height // 2 - 6), "hidden", fill=(230, 230, 230))
    return _encode(placeholder, "PNG")


def fit_to_limit(data: bytes, limit: int, filename: str = "image.png") -> tuple[bytes, str]:
    """The image as is when it fits in `limit` bytes; else JPEG at falling quality, then smaller sizes
    (its infotext carried over into EXIF, where A1111 writes it in a JPEG)."""
    if len(data) <= limit:
        return data, filename
    image = load_png(data)
    parameters = parameters_of(data)
    stem = filename.rsplit(".", 1)[0]
    while True:
        for quality in JPEG_QUALITIES:
            encoded = encode_with_parameters(image, "JPEG", parameters, quality=quality)
            if len(encoded) <= limit:
                return encoded, f"{stem}.jpg"
        if min(image.size) <= 16:
            raise ValueError(f"cannot fit the image in {limit} bytes")
        image = image.resize(
            (max(1, int(image.width * SHRINK_STEP)), max(1, int(image.height * SHRINK_STEP))),
            Image.Resampling.LANCZOS,
        )


def _encode(image: Image.Image, image_format: str, **options: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()
