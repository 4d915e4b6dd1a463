"""Overlapping tiles for work too big to do at once (upscaling), blended back without seams.

A tile is cut from the input at `box` and comes back `scale` times larger; where tiles overlap,
each counts by a ramp that falls to zero at its inner edges, so no tile border shows as a step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # left, top, right, bottom


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering `length` with at least `overlap` shared pixels, spread evenly
    so the last tile ends exactly at the edge."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(index * (length - tile) / (count - 1)) for index in range(count)]


@dataclass(frozen=True)
class Tile:
    box: Box  # where it is cut from the input
    scale: int  # how much larger it comes back
    weights: np.ndarray  # (height, width, 1) at output scale: how much it counts at each pixel

    @property
    def out_box(self) -> Box:
        left, top, right, bottom = self.box
        return left * self.scale, top * self.scale, right * self.scale, bottom * self.scale


def _axis(length: int, tile: int, overlap: int, scale: int) -> list[tuple[int, int, np.ndarray]]:
    """(start, size, blend ramp at output scale) of each tile along one axis."""
    tile = min(tile, length)
    starts = tile_starts(length, tile, overlap)
    ends = [start + tile for start in starts]
    axis = []
    for i, start in enumerate(starts):
        before = ends[i - 1] - start if i > 0 else 0
        after = ends[i] - starts[i + 1] if i + 1 < len(starts) else 0
        axis.append((start, tile, _ramp(tile * scale, before * scale, after * scale)))
    return axis


def plan_tiles(width: int, height: int, tile: int, overlap: int, scale: int = 1) -> list[Tile]:
    """Tiles of an input `width` x `height`, row by row, each with its blend weights."""
    tiles = []
    for top, tile_h, down in _axis(height, tile, overlap, scale):
        for left, tile_w, across in _axis(width, tile, overlap, scale):
            box = (left, top, left + tile_w, top + tile_h)
            tiles.append(Tile(box, scale, np.outer(down, across)[..., None].astype(np.float32)))
    return tiles


def _ramp(size: int, before: int, after: int) -> np.ndarray:
    """1 in the middle, rising over `before` pixels at the start and falling over `after` at the end."""
    position = np.arange(size, dtype=np.float64) + 0.5
    weight = np.ones(size)
    if before > 0:
        weight = np.minimum(weight, position / before)
    if after > 0:
        weight = np.minimum(weight, (size - position) / after)
    return weight


class TileCanvas:
    """Accumulates processed tiles by weight; `image()` is their blend."""

    def __init__(self, width: int, height: int) -> None:
        # float32: plenty for weighted sums of 0-255 values, and half the memory at 4096x4096
        self.total = np.zeros((height, width, 3), dtype=np.float32)
        self.weight = np.zeros((height, width, 1), dtype=np.float32)

    def add(self, tile: Tile, picture: Image.Image) -> None:
        left, top, right, bottom = tile.out_box
        if picture.size != (right - left, bottom - top):
            picture = picture.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
        self.total[top:bottom, left:right] += tile.weights * np.asarray(
            picture.convert("RGB"), dtype=np.float32
        )
        self.weight[top:bottom, left:right] += tile.weights

    def image(self) -> Image.Image:
        blended = np.clip(np.rint(self.total / self.weight), 0, 255).astype(np.uint8)
        return Image.fromarray(blended, "RGB")
