"""Fit the bundled model's latent-to-RGB preview map on its own training scenes and write it next
to its weights (`latent_rgb.json`): `python -m generation.bundled.preview_map [MODEL_FOLDER]` (train.py
writes it with every model it saves). Other models fit a generic map at their first preview
(generation.models.previews)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from generation.bundled import BUNDLED_MODEL_DIR, decodes_edge_padded, scene_variety
from generation.bundled.training_data import scenes_batch
from generation.models.edge_padding import pad_decoder_edges
from generation.models.previews import LATENT_RGB_FILE, LatentToRgb, fit_latent_rgb

SCENES = 64


def fit_on_scenes(
    vae: AutoencoderKL, count: int = SCENES, seed: int = 0, variety: float = 0.0
) -> LatentToRgb:
    return fit_latent_rgb(vae, scenes_batch(random.Random(seed), count, vae.config.sample_size, variety))


def write_preview_map(model: Path, vae: AutoencoderKL, variety: float = 0.0) -> Path:
    path = model / LATENT_RGB_FILE
    path.write_text(fit_on_scenes(vae, variety=variety).to_json() + "\n", encoding="utf-8")
    return path


def main() -> None:
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else BUNDLED_MODEL_DIR
    vae = AutoencoderKL.from_pretrained(model / "vae", torch_dtype=torch.float32)
    if decodes_edge_padded(model):
        pad_decoder_edges(vae)
    print(f"wrote {write_preview_map(model, vae, scene_variety(model))}")


if __name__ == "__main__":
    main()
