"""The IP-Adapter's head start: its projection fitted so a picture's image tokens are its caption's
token states (generation/bundled/image_token_alignment.py)."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from diffusers import StableDiffusionPipeline

from generation.bundled import BUNDLED_MODEL_DIR
from generation.bundled.dataset import Scene, sample_scene
from generation.bundled.image_token_alignment import align_projection, caption_token_states
from generation.bundled.train_ip_adapter import TOKENS
from generation.models.image_prompts import fresh_adapter_state


@pytest.fixture(scope="module")
def pipe() -> Any:
    pipe = StableDiffusionPipeline.from_pretrained(
        BUNDLED_MODEL_DIR, safety_checker=None, dtype=torch.float32
    )
    embed_dim = pipe.unet.config.cross_attention_dim
    state = fresh_adapter_state(pipe.unet, embed_dim, TOKENS, seed=0)
    pipe.load_ip_adapter(state, subfolder=None, weight_name=None, image_encoder_folder=None)
    return pipe


def _nearest_caption_share(pipe: Any, embeds: torch.Tensor, targets: torch.Tensor) -> float:
    """How often a picture's tokens lie nearer its own caption's states than any other's."""
    with torch.no_grad():
        tokens = pipe.unet.encoder_hid_proj.image_projection_layers[0](embeds).flatten(1)
    nearest = torch.cdist(tokens, targets.flatten(1)).argmin(dim=1)
    return float((nearest == torch.arange(len(embeds))).float().mean())


def test_fitted_image_tokens_read_as_their_pictures_captions(pipe: Any) -> None:
    rng = random.Random(4)
    scenes: list[Scene] = []
    captions: set[tuple[str, str, str]] = set()
    while len(scenes) < 24:  # distinct captions, so "nearest" names one scene
        scene = sample_scene(rng, max_shapes=1)
        shape = scene.shapes[0]
        if (shape.size, shape.colour, shape.shape) not in captions:
            captions.add((shape.size, shape.colour, shape.shape))
            scenes.append(scene)
    embeds = torch.randn(
        len(scenes), pipe.unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1)
    )
    targets = caption_token_states(pipe, scenes)
    assert _nearest_caption_share(pipe, embeds, targets) < 0.5  # a fresh projection: random tokens
    error = align_projection(pipe, embeds, scenes, 300, torch.Generator().manual_seed(2))
    assert _nearest_caption_share(pipe, embeds, targets) == 1.0
    assert error < 0.1 * float(targets.var())


def test_the_zero_embedding_is_fitted_to_the_empty_caption(pipe: Any) -> None:
    """The pipeline's unconditional pass feeds zeros: they become the empty caption's end state."""
    scenes = [sample_scene(random.Random(seed), max_shapes=1) for seed in range(8)]
    embeds = torch.randn(8, pipe.unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(3))
    align_projection(pipe, embeds, scenes, 300, torch.Generator().manual_seed(4))
    ids = pipe.tokenizer("", padding="max_length", return_tensors="pt").input_ids
    with torch.no_grad():
        empty = pipe.text_encoder(ids)[0][0, 1]
        zero_tokens = pipe.unet.encoder_hid_proj.image_projection_layers[0](torch.zeros(1, embeds.shape[1]))[
            0
        ]
    assert torch.allclose(zero_tokens, empty.expand_as(zero_tokens), atol=0.1 * float(empty.abs().max()))
