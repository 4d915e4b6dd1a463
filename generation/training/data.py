"""What a training step samples from: the user's photos and the prior-preservation class images, as
VAE latent distributions, encoded once before the first step."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from generation.models.loading import LoadedModel
from generation.operations.imagine import run_imagine
from generation.outputs import encode_png
from generation.specs import ImagineSpec

log = logging.getLogger(__name__)

CLASS_IMAGE_BATCH = 4


@dataclass
class LatentSet:
    """Mean and std of each image's VAE posterior: a step draws a fresh latent sample per image."""

    mean: torch.Tensor  # (n, c, h, w)
    std: torch.Tensor

    def __len__(self) -> int:
        return self.mean.shape[0]

    def sample(self, indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(self.mean[indices].shape, generator=generator).to(
            self.mean.device, self.mean.dtype
        )
        return self.mean[indices] + self.std[indices] * noise


@torch.no_grad()
def encode_images(model: LoadedModel, images: list[Image.Image], *, flip: bool) -> LatentSet:
    """Encode `images` (and their mirror images when `flip`) into scaled latent distributions."""
    if flip:
        images = images + [ImageOps.mirror(image) for image in images]
    vae = model.pipeline.vae
    pixels = torch.stack([_to_tensor(image) for image in images]).to(vae.device, vae.dtype)
    posterior = vae.encode(pixels).latent_dist
    scale = vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return LatentSet(mean=(posterior.mean - shift) * scale, std=posterior.std * scale)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


def class_images(model: LoadedModel, class_noun: str, count: int, cache_root: Path) -> list[Image.Image]:
    """`count` images of "a <class noun>" by the base model itself, cached per model and noun.

    Prior preservation trains on these beside the user's photos so the class noun keeps its meaning.
    Image i always comes from seed i, so a cache that holds some of them is simply topped up.
    """
    directory = cache_root / _model_key(model) / class_noun.replace(" ", "_")
    directory.mkdir(parents=True, exist_ok=True)
    missing = [index for index in range(count) if not (directory / f"{index:04d}.png").exists()]
    for start in range(0, len(missing), CLASS_IMAGE_BATCH):
        batch = missing[start : start + CLASS_IMAGE_BATCH]
        log.info("rendering class images %s of %r", batch, class_noun)
        for index, image in zip(batch, _render(model, f"a {class_noun}", batch), strict=True):
            _write_atomically(directory / f"{index:04d}.png", encode_png(image))
    return [Image.open(directory / f"{index:04d}.png").convert("RGB") for index in range(count)]


def _model_key(model: LoadedModel) -> str:
    # The source too, so pointing a model name at other weights does not reuse the old class images.
    digest = hashlib.sha256(model.config.source.encode()).hexdigest()[:12]
    return f"{model.config.name}-{digest}"


def _render(model: LoadedModel, prompt: str, seeds: list[int]) -> list[Image.Image]:
    """The model's own pictures of `prompt` with its default settings, as any /imagine renders them."""
    config = model.config
    spec = ImagineSpec(
        model=config.name,
        prompt=prompt,
        seeds=tuple(seeds),
        width=model.resolution,
        height=model.resolution,
        steps=config.steps,
        guidance=config.guidance,
        scheduler=config.scheduler,
    )
    return run_imagine(model, spec).images


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
