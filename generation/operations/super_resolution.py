"""Upscale's first stage on a model with a super-resolution network configured (`upscaler` = one
ESRGAN-family file; generation.models.sr_networks): the source enlarged by the network, tile by tile
so memory stays bounded, instead of a Lanczos resize. The img2img detail passes then start from it.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from generation.models.loading import LoadedModel
from generation.models.sr_networks import SrNetwork, load_sr_network
from generation.operations.upscale_tiles import TileCanvas, plan_tiles

log = logging.getLogger(__name__)

SR_TILE, SR_OVERLAP = 192, 16  # source pixels per tile, and shared with each neighbour


def sr_network(model: LoadedModel) -> SrNetwork:
    """The model's super-resolution network, loaded on first use and kept with the model."""
    if "sr_network" not in model.extras:
        assert model.config.upscaler is not None
        network = load_sr_network(model.config.upscaler)
        network.module.to(model.device)
        model.extras["sr_network"] = network  # not a pipeline, but kept with the model alike
        log.info("loaded %s x%d upscaler for %s", network.architecture, network.scale, model.config.name)
    found: SrNetwork = model.extras["sr_network"]
    return found


def enlarge(network: SrNetwork, source: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`source` at `size`: the network applied until the picture is at least that large (twice for a
    4x upscale by a 2x network), then resized to exactly `size` (down, for a 2x upscale by a 4x one)."""
    image = source.convert("RGB")
    while image.width < size[0] or image.height < size[1]:
        image = _apply(network, image)
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _apply(network: SrNetwork, image: Image.Image) -> Image.Image:
    canvas = TileCanvas(image.width * network.scale, image.height * network.scale)
    for tile in plan_tiles(image.width, image.height, SR_TILE, SR_OVERLAP, scale=network.scale):
        pixels = np.asarray(image.crop(tile.box), dtype=np.float32) / 255
        out = network(torch.from_numpy(pixels).permute(2, 0, 1)[None])[0]
        picture = (out.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)  # off the GPU
        canvas.add(tile, Image.fromarray(picture, "RGB"))
    return canvas.image()
