"""The bundled model's own latents, paired with the scenes it redrew: what the decoder learns from."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL

from generation.bundled import BUNDLED_MODEL_DIR
from generation.bundled.redrawn_latents import redrawn_latents
from generation.bundled.training_data import as_model_input


@torch.no_grad()
def test_each_latent_decodes_near_the_scene_it_was_redrawn_from() -> None:
    latents, pictures = redrawn_latents(BUNDLED_MODEL_DIR, 4, variety=0.06, batch=2, seed=3)
    vae = AutoencoderKL.from_pretrained(BUNDLED_MODEL_DIR / "vae", dtype=torch.float32)
    assert latents.shape == (4, vae.config.latent_channels, 16, 16)
    assert pictures.shape == (4, 3, 128, 128) and pictures.dtype == torch.uint8
    decoded = vae.decode(latents).sample.clamp(-1, 1)
    errors = (decoded[:, None] - as_model_input(pictures)[None]).abs().mean(dim=(2, 3, 4)) * 127.5
    assert torch.equal(errors.argmin(dim=1), torch.arange(4))  # each its own scene, in order
    assert float(errors.diagonal().max()) < 16  # a low strength: the scene kept (about 8/255 here)
