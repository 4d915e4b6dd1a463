"""Decoding with a replicated latent cell around the latents: the same pictures' size, the edges
decoded as the decoder's inside, and the switch in a model's settings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from generation.bundled import BUNDLED_MODEL_DIR, decodes_edge_padded
from generation.config import ModelConfig
from generation.models.edge_padding import decoder_scale, pad_decoder_edges
from generation.models.loading import load_model


def _bundled_vae() -> AutoencoderKL:
    vae: AutoencoderKL = AutoencoderKL.from_pretrained(BUNDLED_MODEL_DIR / "vae", dtype=torch.float32)
    return vae.eval()


@torch.no_grad()
def test_a_padded_vae_decodes_the_padded_latents_and_crops_them_to_the_same_size() -> None:
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    plain, padded = _bundled_vae(), _bundled_vae()
    pad_decoder_edges(padded)
    pad_decoder_edges(padded)  # twice: still one cell
    assert decoder_scale(plain) == 8
    expected = plain.decode(torch.nn.functional.pad(latents, (1, 1, 1, 1), mode="replicate")).sample
    pictures = padded.decode(latents).sample
    assert pictures.shape == plain.decode(latents).sample.shape == (2, 3, 128, 128)
    assert torch.allclose(pictures, expected[..., 8:-8, 8:-8], atol=1e-5)
    assert torch.equal(padded.decode(latents, return_dict=False)[0], pictures)
    edges = (pictures - plain.decode(latents).sample).abs()
    assert float(edges[..., :, -2:].mean()) > 2 * float(
        edges[..., 32:-32, 32:-32].mean()
    )  # the frame moves most


def test_the_setting_pads_the_loaded_pipelines_vae(tiny_config: ModelConfig) -> None:
    assert not getattr(load_model(tiny_config, device="cpu").pipeline.vae, "edge_padding_cells", 0)
    padded = load_model(dataclasses.replace(tiny_config, vae_edge_padding=True), device="cpu")
    assert padded.pipeline.vae.edge_padding_cells == 1
    side = padded.resolution
    picture = padded.pipeline(
        prompt="a red square", num_inference_steps=2, width=side, height=side, output_type="pil"
    ).images[0]
    assert picture.size == (side, side)


def test_a_bundled_model_folder_says_whether_it_decodes_padded(tmp_path: Path) -> None:
    assert not decodes_edge_padded(tmp_path)  # no training_config.json
    config = tmp_path / "training_config.json"
    config.write_text(json.dumps({"variety": 0.06}))
    assert not decodes_edge_padded(tmp_path)
    config.write_text(json.dumps({"variety": 0.06, "vae_edge_padding": True}))
    assert decodes_edge_padded(tmp_path)
