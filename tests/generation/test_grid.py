from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from generation.pictures.grid import compose_grid, grid_shape, grid_tile


def _solid(value: int, size: tuple[int, int] = (24, 16)) -> Image.Image:
    return Image.new("RGB", size, (value, 255 - value, value // 2))


@pytest.mark.parametrize(
    ("count", "shape"), [(1, (1, 1)), (2, (2, 1)), (3, (2, 2)), (4, (2, 2)), (9, (3, 3))]
)
def test_grid_shape(count: int, shape: tuple[int, int]) -> None:
    assert grid_shape(count) == shape


def test_tiles_cut_from_a_grid_are_the_original_images() -> None:
    images = [_solid(v) for v in (10, 80, 150, 220)]
    grid = compose_grid(images)
    assert grid.size == (48, 32)
    for index, image in enumerate(images):
        assert np.array_equal(np.asarray(grid_tile(grid, index, 4)), np.asarray(image))


def test_grid_rejects_mixed_sizes() -> None:
    with pytest.raises(ValueError, match="one size"):
        compose_grid([_solid(1), _solid(2, (8, 8))])
