"""Latents the bundled model's own sampler ends at, paired with the pictures they should decode to.

A decoder fine-tuned on the encoder's latents alone learns what the encoder writes, not what the UNet
writes. Where the two differ the picture shows it: the bottom-right corner's cell is where the
encoder's one-sided padding makes its latents odd (twice an inner cell's spread), the UNet draws that
cell its own way, and every picture the model makes, or redraws at a strength as low as 0.2, carries
a 2-3 px colour fringe there (bench/RESULTS.md, sessions 27-30). Redrawing known scenes at a low
strength with their own caption keeps what they show, so the scene itself is the target for the
latents the sampler ends at.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image
from tqdm import tqdm

from generation.bundled.dataset import sample_scene
from generation.bundled.training_data import render_pictures
from generation.models.schedulers import make_scheduler

STRENGTHS = (0.1, 0.35)  # low enough to keep each scene's layout and colours, high enough for 2-7 steps
STEPS = 20  # the product's default: the sampler's last steps are those of a full picture
GUIDANCE = 5.0  # the bundled model's default CFG


@torch.no_grad()
def redrawn_latents(
    model: Path,
    count: int,
    *,
    variety: float,
    seed: int = 0,
    batch: int = 16,
    sampler: str = "euler_a",
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` fresh scenes redrawn by the model in `model` at a strength drawn from STRENGTHS per
    batch: the latents it ends at, unscaled as `vae.decode` takes them (N, 4, h, w), and the scenes
    themselves as uint8 (N, 3, side, side)."""
    pipeline = StableDiffusionImg2ImgPipeline.from_pretrained(
        model, dtype=torch.float32, safety_checker=None, requires_safety_checker=False
    )
    pipeline.scheduler = make_scheduler(sampler, pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    side = pipeline.vae.config.sample_size
    rng, generator = random.Random(seed), torch.Generator().manual_seed(seed)
    latents, pictures = [], []
    for start in tqdm(range(0, count, batch), desc="redraw"):
        scenes = [sample_scene(rng, variety=variety) for _ in range(min(batch, count - start))]
        drawn = render_pictures(scenes, side)
        images = [Image.fromarray(picture.permute(1, 2, 0).numpy()) for picture in drawn]
        output = pipeline(
            prompt=[scene.caption() for scene in scenes],
            image=images,
            strength=rng.uniform(*STRENGTHS),
            num_inference_steps=STEPS,
            guidance_scale=GUIDANCE,
            generator=generator,
            output_type="latent",
        )
        latents.append(output.images / pipeline.vae.config.scaling_factor)
        pictures.append(drawn)
    return torch.cat(latents), torch.cat(pictures)
