"""A concept the bundled model has never drawn, for testing personal tokens: a teal hexagon.

Neither the colour (teal is not among the model's ten) nor the shape (six shapes, no hexagon) is in its
training data, so images made with a trained token can be measured against the photos directly: how
much of each image is the concept's colour, and how close its colour histogram is to the photos'.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw

TEAL = (0, 150, 150)
_SUPERSAMPLE = 4


def hexagon_photos(count: int, *, size: int = 64, seed: int = 0) -> list[Image.Image]:
    """`count` different photos of the concept: varied size, position, rotation and a light background."""
    rng = random.Random(seed)
    return [_hexagon(rng, size) for _ in range(count)]


def _hexagon(rng: random.Random, size: int) -> Image.Image:
    canvas = size * _SUPERSAMPLE
    shade = rng.randint(225, 250)
    image = Image.new("RGB", (canvas, canvas), (shade, shade, shade))
    radius = canvas * rng.uniform(0.25, 0.36)
    centre_x = canvas * rng.uniform(0.4, 0.6)
    centre_y = canvas * rng.uniform(0.4, 0.6)
    turn = rng.uniform(0, math.pi / 3)
    corners = [
        (
            centre_x + radius * math.cos(turn + k * math.pi / 3),
            centre_y + radius * math.sin(turn + k * math.pi / 3),
        )
        for k in range(6)
    ]
    ImageDraw.Draw(image).polygon(corners, fill=TEAL)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def concept_share(image: Image.Image, *, tolerance: float = 60.0) -> float:
    """Fraction of pixels within `tolerance` (RGB distance) of the concept's teal."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    distance = np.linalg.norm(pixels - np.array(TEAL, dtype=np.float32), axis=-1)
    return float((distance < tolerance).mean())


def colour_histogram(images: list[Image.Image], bins: int = 4) -> np.ndarray:
    pixels = np.concatenate([np.asarray(i.convert("RGB")).reshape(-1, 3) for i in images]) // (256 // bins)
    codes = pixels[:, 0].astype(np.int64) * bins * bins + pixels[:, 1] * bins + pixels[:, 2]
    histogram = np.bincount(codes, minlength=bins**3).astype(np.float64)
    normalised: np.ndarray = histogram / histogram.sum()
    return normalised


def histogram_distance(images: list[Image.Image], reference: list[Image.Image]) -> float:
    """Mean L1 distance (0 = same colours, 2 = disjoint) between each image's histogram and the photos'."""
    target = colour_histogram(reference)
    return float(np.mean([np.abs(colour_histogram([image]) - target).sum() for image in images]))


def palette(images: list[Image.Image], *, levels: int = 16, min_share: float = 0.01) -> np.ndarray:
    """The colours (quantised to `levels` per channel) that cover at least `min_share` of the pixels."""
    step = 256 // levels
    pixels = np.concatenate([np.asarray(i.convert("RGB")).reshape(-1, 3) for i in images]) // step
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    return (colours[counts >= min_share * len(pixels)] * step + step // 2).astype(np.float32)


def palette_distance(images: list[Image.Image], reference: list[Image.Image]) -> float:
    """Mean RGB distance (0-441) from each pixel of `images` to the nearest main colour of `reference`.

    Graded, unlike the teal share: an image that gets the light background right and the hexagon
    wrong is closer than one that gets both wrong.
    """
    colours = palette(reference)
    pixels = np.concatenate([np.asarray(i.convert("RGB"), dtype=np.float32).reshape(-1, 3) for i in images])
    distances = np.linalg.norm(pixels[:, None, :] - colours[None, :, :], axis=-1)
    return float(distances.min(axis=1).mean())
