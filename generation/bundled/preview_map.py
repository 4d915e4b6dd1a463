"""Fit the bundled model's latent-to-RGB preview map on its own training scenes and write it next
to its weights (`latent_rgb.json`): `python -m generation.bundled.preview_map`. Other models fit a
generic map at their first preview (generation.models.previews)."""

from __future__ import annotations

import random

import numpy as np
import torch
from diffusers import AutoencoderKL

from generation.bundled import BUNDLED_MODEL_DIR
from generation.bundled.dataset import sample_scene
from generation.models.previews import LATENT_RGB_FILE, LatentToRgb, fit_latent_rgb

SCENES = 64


def fit_on_scenes(vae: AutoencoderKL, count: int = SCENES, seed: int = 0) -> LatentToRgb:
    rng = random.Random(seed)
    side = vae.config.sample_size
    scenes = [np.asarray(sample_scene(rng).render(side), dtype=np.float32) / 127.5 - 1 for _ in range(count)]
    return fit_latent_rgb(vae, torch.from_numpy(np.stack(scenes)).permute(0, 3, 1, 2))


def main() -> None:
    vae = AutoencoderKL.from_pretrained(BUNDLED_MODEL_DIR / "vae")
    path = BUNDLED_MODEL_DIR / LATENT_RGB_FILE
    path.write_text(fit_on_scenes(vae).to_json() + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
