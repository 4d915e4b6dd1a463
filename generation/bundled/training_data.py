"""What the bundled model's training (generation/bundled/train.py) draws its batches from: scenes
rendered once and their captions, the VAE's latents of them, and which scenes each UNet batch takes.

A share of every UNet batch can come from *plain scenes* (`dataset.sample_plain_scene`: one shape,
its position said, on white). On the full scenes a UNet from scratch learns colours and shapes but not
where the caption puts them: the output at the noisiest step did not move with "top left" vs "bottom
right" after 1,750 steps, nor after 400 steps at that step alone. On plain scenes the position is the
main thing left to learn, and it is learned in 250-300 steps (9 of 9 positions; bench/RESULTS.md,
"Session 15")."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from tqdm import tqdm

from generation.bundled.dataset import Scene, sample_plain_scene, sample_scene

_PLAIN_SEED_OFFSET = 7  # plain scenes from a generator of their own: the full scenes stay as they were


def render_scenes(
    *, seed: int, count: int, plain: int, variety: float, side: int
) -> tuple[torch.Tensor, list[str]]:
    """`count` full scenes then `plain` plain ones, as uint8 (N, 3, side, side; `as_model_input`
    scales a batch to [-1, 1]), and their captions; held-out pairs never appear."""
    rng = random.Random(seed)
    scenes: list[Scene] = [sample_scene(rng, variety=variety) for _ in range(count)]
    plain_rng = random.Random(seed + _PLAIN_SEED_OFFSET)
    scenes += [sample_plain_scene(plain_rng, variety=variety) for _ in range(plain)]
    return render_pictures(scenes, side), [scene.caption() for scene in scenes]


def _render(scenes: Sequence[Scene], side: int) -> np.ndarray:
    return np.stack([np.asarray(scene.render(side)) for scene in scenes])


def render_pictures(scenes: Sequence[Scene], side: int, chunk: int = 500) -> torch.Tensor:
    """`scenes` drawn at `side` px as uint8 (N, 3, side, side), on every core when there are many
    (22,000 scenes take 100 s on one): rendering is a pure function of the scene, so the result is
    the same however it is split."""
    workers = min(os.cpu_count() or 1, len(scenes) // chunk)
    if workers < 2:
        pixels = _render(scenes, side)
    else:
        parts = [scenes[start : start + chunk] for start in range(0, len(scenes), chunk)]
        with ProcessPoolExecutor(workers) as pool:
            pixels = np.concatenate(
                list(tqdm(pool.map(_render, parts, [side] * len(parts)), total=len(parts), desc="scenes"))
            )
    return torch.from_numpy(pixels).permute(0, 3, 1, 2)


def subject_weights(scenes: Sequence[Scene], side: int, weight: float) -> torch.Tensor:
    """Per latent cell (N, 1, side, side): 1 + `weight` x the share of the cell its shapes cover (masks
    drawn 8 px a cell, then averaged: the share does not depend on the VAE's factor): a loss weighted
    by it spends more on the subject than on the background, which fills most of a picture and is easy
    to copy."""
    masks = np.stack([np.asarray(scene.subject_mask(side * 8)) for scene in scenes])
    cover = F.avg_pool2d(torch.from_numpy(masks).float()[:, None] / 255.0, 8)
    return 1.0 + weight * cover


def as_model_input(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0


def scenes_batch(rng: random.Random, count: int, side: int, variety: float) -> torch.Tensor:
    """`count` fresh scenes drawn at `side` px, as model input (N, 3, side, side) in [-1, 1]."""
    pixels = np.stack([np.asarray(sample_scene(rng, variety=variety).render(side)) for _ in range(count)])
    return as_model_input(torch.from_numpy(pixels).permute(0, 3, 1, 2))


@torch.no_grad()
def set_latent_scale(vae: AutoencoderKL, images: torch.Tensor) -> None:
    """Scale latents to unit variance, as SD's scaling_factor does for its VAE."""
    chunks = torch.split(images[:2048], 256)
    latents = torch.cat(
        [vae.encode(as_model_input(chunk).to(vae.device)).latent_dist.mean for chunk in chunks]
    )
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))


@torch.no_grad()
def encode_dataset(vae: AutoencoderKL, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image, so each UNet step samples latents without the encoder
    (on the CPU, whatever device the VAE is on: batches are drawn there)."""
    means, stds = [], []
    for chunk in tqdm(torch.split(images, 256), desc="encode"):
        distribution = vae.encode(as_model_input(chunk).to(vae.device)).latent_dist
        means.append(distribution.mean.cpu())
        stds.append(distribution.std.cpu())
    scale = vae.config.scaling_factor
    return torch.cat(means) * scale, torch.cat(stds) * scale


def batch_indices(
    *, full: int, plain: int, batch: int, plain_share: float, generator: torch.Generator
) -> torch.Tensor:
    """One UNet batch: `plain_share` of it from the plain scenes (stored after the `full` ones)."""
    from_plain = round(batch * plain_share) if plain else 0
    return torch.cat(
        [
            torch.randint(full, (batch - from_plain,), generator=generator),
            full + torch.randint(max(plain, 1), (from_plain,), generator=generator),
        ]
    )
