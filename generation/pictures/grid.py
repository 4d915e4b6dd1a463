"""Grid composition: the 2x2 image Discord shows under /imagine."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) for `count` images: 4 -> 2x2, 2 -> 2x1, 1 -> 1x1."""
    columns = math.ceil(math.sqrt(count))
    return columns, math.ceil(count / columns)


def compose_grid(images: Sequence[Image.Image]) -> Image.Image:
    """Images of one size laid out left to right, top to bottom, edge to edge (tile i is a plain crop)."""
    if not images:
        raise ValueError("compose_grid needs at least one image")
    width, height = images[0].size
    if any(image.size != (width, height) for image in images):
        raise ValueError(f"grid images must share one size, got {[image.size for image in images]}")
    columns, rows = grid_shape(len(images))
    grid = Image.new("RGB", (columns * width, rows * height))
    for index, image in enumerate(images):
        grid.paste(image.convert("RGB"), ((index % columns) * width, (index // columns) * height))
    return grid


def grid_tile(grid: Image.Image, index: int, count: int) -> Image.Image:
    """Image `index` cut back out of a grid of `count` images."""
    columns, rows = grid_shape(count)
    width, height = grid.width // columns, grid.height // rows
    left, top = (index % columns) * width, (index // columns) * height
    return grid.crop((left, top, left + width, top + height))
