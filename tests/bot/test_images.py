from __future__ import annotations

import io

import numpy as np
from PIL import Image

from bot.images import fit_to_limit, grid_png, load_png


def _noise_png(size: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_small_images_are_left_alone() -> None:
    data = _noise_png(32)
    assert fit_to_limit(data, len(data), "grid.png") == (data, "grid.png")


def test_large_images_are_reencoded_under_the_limit() -> None:
    data = _noise_png(256)  # random pixels: ~200 KB as PNG, hard to compress
    fitted, name = fit_to_limit(data, 20_000, "grid.png")
    assert len(fitted) <= 20_000 and name == "grid.jpg"
    with Image.open(io.BytesIO(fitted)) as image:
        assert image.format == "JPEG" and image.width <= 256


def test_grid_of_four() -> None:
    tiles = [_noise_png(16) for _ in range(4)]
    assert load_png(grid_png(tiles)).size == (32, 32)
    assert grid_png(tiles[:1]) == tiles[0]
