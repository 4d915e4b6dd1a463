"""Image sizes: aspect ratios snapped to the model's pixel budget and to whole latent pixels."""

from __future__ import annotations

import math

SIZE_MULTIPLE = 8  # the VAE of SD-family models downsamples by 8: sides must be whole latent pixels


def size_for_aspect(
    aspect: tuple[int, int], resolution: int, multiple: int = SIZE_MULTIPLE
) -> tuple[int, int]:
    """(width, height) with the given aspect ratio, multiples of `multiple`, area at most resolution².

    >>> size_for_aspect((16, 9), 512)
    (680, 384)
    """
    ratio_w, ratio_h = aspect
    budget = resolution * resolution
    width = math.sqrt(budget * ratio_w / ratio_h)
    height = math.sqrt(budget * ratio_h / ratio_w)
    snapped_w = max(multiple, int(width // multiple) * multiple)
    snapped_h = max(multiple, int(height // multiple) * multiple)
    return snapped_w, snapped_h
