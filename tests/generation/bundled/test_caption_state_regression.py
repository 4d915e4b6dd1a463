"""IP-Adapter Plus's head start: its resampler regressed so a picture's tokens are the text encoder's
states of its caption (generation/bundled/caption_state_regression.py)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
import torch
from diffusers import StableDiffusionPipeline

from generation.bundled import BUNDLED_MODEL_DIR
from generation.bundled.caption_state_regression import (
    HiddenStates,
    caption_states,
    regress_through_encoder,
    regress_to_captions,
    shape_contrast,
)
from generation.bundled.dataset import SHAPES, Scene, sample_scene
from generation.bundled.image_encoder import ENCODER_SIDE, build_image_encoder, clip_pixels
from generation.bundled.image_token_alignment import fit_to_targets
from generation.bundled.training_data import as_model_input, render_pictures
from generation.models.image_prompts import fresh_adapter_state

WIDTH = 24  # the encoder's hidden states' width (any: the resampler's input)


def _distinct_scenes(rng: random.Random) -> list[Scene]:
    """Up to 16 one-shape scenes, no two with the same caption."""
    return list(
        {scene.caption(): scene for scene in (sample_scene(rng, max_shapes=1) for _ in range(16))}.values()
    )


def _pipe(width: int = WIDTH) -> Any:
    pipe = StableDiffusionPipeline.from_pretrained(
        BUNDLED_MODEL_DIR, safety_checker=None, dtype=torch.float32
    )
    tokens = pipe.tokenizer.model_max_length
    state = fresh_adapter_state(pipe.unet, width, tokens, seed=0, kind="plus")
    pipe.load_ip_adapter(state, subfolder=None, weight_name=None, image_encoder_folder=None)
    return pipe


@pytest.mark.slow  # 300 regression steps of a resampler: a minute or two on 2 cores
def test_regressed_tokens_are_nearest_their_own_captions_states_and_the_unguided_the_empty_captions() -> None:
    pipe = _pipe()
    rng = random.Random(5)
    scenes = _distinct_scenes(rng)
    captions = [scene.caption() for scene in scenes]
    generator = torch.Generator().manual_seed(1)
    encodings = torch.randn(len(captions), 17, WIDTH, generator=generator)  # 16 patches and CLS, say
    unguided = torch.zeros(17, WIDTH)
    targets = caption_states(pipe, captions).flatten(1)
    resampler = pipe.unet.encoder_hid_proj.image_projection_layers[0]

    def nearest() -> torch.Tensor:
        with torch.no_grad():
            return torch.cdist(resampler(encodings).flatten(1), targets).argmin(dim=1)

    assert not bool((nearest() == torch.arange(len(captions))).all())  # fresh: not yet
    error = regress_to_captions(pipe, encodings, unguided, scenes, 300, torch.Generator().manual_seed(2))
    assert bool((nearest() == torch.arange(len(captions))).all())
    assert error < 0.2 * float(targets.var())
    with torch.no_grad():
        empty = resampler(unguided[None])[0]
    expected = caption_states(pipe, [""])[0]
    assert float((empty - expected).pow(2).mean()) < 0.2 * float(targets.var())


@pytest.mark.slow  # 300 steps through a small image encoder and a resampler: a minute or two on 2 cores
def test_regression_through_the_encoder_trains_it_and_brings_each_pictures_tokens_nearest_its_own_caption() -> (
    None
):
    pipe = _pipe(width=96)
    rng = random.Random(7)
    scenes = _distinct_scenes(rng)
    captions = [scene.caption() for scene in scenes]
    pictures = as_model_input(render_pictures(scenes, ENCODER_SIDE))
    torch.manual_seed(3)
    encoder = build_image_encoder(pipe.unet.config.cross_attention_dim)
    before = [parameter.detach().clone() for parameter in encoder.parameters()]
    targets = caption_states(pipe, captions).flatten(1)
    resampler = pipe.unet.encoder_hid_proj.image_projection_layers[0]

    error = regress_through_encoder(pipe, encoder, pictures, captions, 300, torch.Generator().manual_seed(2))

    assert any(not torch.equal(old, new) for old, new in zip(before, encoder.parameters(), strict=True))
    assert not any(parameter.requires_grad for parameter in encoder.parameters())  # frozen again
    with torch.no_grad():
        tokens = resampler(HiddenStates(encoder)(clip_pixels(pictures))).flatten(1)
        unguided = HiddenStates(encoder)(torch.zeros(1, 3, ENCODER_SIDE, ENCODER_SIDE))
        empty = resampler(unguided)[0]
    assert bool((torch.cdist(tokens, targets).argmin(dim=1) == torch.arange(len(captions))).all())
    assert error < 0.2 * float(targets.var())
    assert float((empty - caption_states(pipe, [""])[0]).pow(2).mean()) < 0.2 * float(targets.var())


def test_the_shape_contrast_is_low_at_the_own_captions_states_and_high_between_shapes_or_at_another() -> None:
    pipe = StableDiffusionPipeline.from_pretrained(
        BUNDLED_MODEL_DIR, safety_checker=None, dtype=torch.float32
    )
    rng = random.Random(3)
    scenes = [sample_scene(rng, max_shapes=2) for _ in range(4)]
    contrast = shape_contrast(pipe, scenes)
    index = torch.arange(len(scenes))
    own = caption_states(pipe, [scene.caption() for scene in scenes])
    others = [
        dataclasses.replace(scene, shapes=(dataclasses.replace(scene.shapes[0], shape=_another(scene)), *scene.shapes[1:]))
        for scene in scenes
    ]  # fmt: skip
    other = caption_states(pipe, [scene.caption() for scene in others])
    between = (own + other) / 2  # where the squared error alone settles when unsure
    assert float(contrast(own, index)) < 0.5 < float(contrast(between, index)) < float(contrast(other, index))
    with_unguided = contrast(torch.cat([own, own[:1]]), torch.tensor([*range(len(scenes)), len(scenes)]))
    assert torch.allclose(with_unguided, contrast(own, index))  # the unguided input has no shape: left out


def _another(scene: Scene) -> str:
    return next(shape for shape in SHAPES if shape != scene.shapes[0].shape)


def test_fit_to_targets_adds_the_extra_loss() -> None:
    inputs, targets = torch.randn(9, 3), torch.zeros(9, 2)
    fitted = [torch.nn.Linear(3, 2) for _ in range(2)]
    fit_to_targets(
        fitted[0], inputs, targets, 1000, torch.Generator().manual_seed(0), batch=8, one_cycle=False
    )
    fit_to_targets(fitted[1], inputs, targets, 1000, torch.Generator().manual_seed(0), batch=8, one_cycle=False,
                   extra_loss=lambda outputs, index: (outputs - 1).pow(2).mean())  # fmt: skip
    with torch.no_grad():
        assert float(fitted[0](inputs).abs().mean()) < 0.1  # onto the targets
        assert float(fitted[1](inputs).mean()) > 0.3  # pulled halfway to 1 by the extra loss
