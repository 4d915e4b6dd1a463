"""A head start for the bundled IP-Adapter Plus: its resampler's tokens regressed onto the text
encoder's states of the picture's own caption, the whole sequence (start, words, end, padding).

Each `to_k_ip`/`to_v_ip` starts as a copy of its layer's text `to_k`/`to_v` (fresh_adapter_state), so
tokens equal to a caption's states make the image path attend as the text path does for that caption,
start and padding tokens included (they take most of the attention there; four tokens fitted to the
words alone did not act as the words: image_token_alignment.py). Measured with the caption's true
states in place of the tokens (on the second model, text "a shape", scale 1): shape right in 33 of
40 pictures, where the pooled adapter after 2,500 steps gives 55 of 100 (bench/RESULTS.md, "Session 22").
Regressed by squared error alone, the tokens hedge between shapes where a picture leaves a doubt
(a blob in the picture); shape_contrast keeps them apart: shape at step 0 15 -> 26 of 40 ("Session 23").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import CLIPVisionModelWithProjection

from generation.bundled.dataset import SHAPES, Scene
from generation.bundled.image_encoder import ENCODER_SIDE, clip_pixels
from generation.bundled.image_token_alignment import fit_to_targets


@torch.no_grad()
def caption_states(pipe: Any, captions: Sequence[str]) -> torch.Tensor:
    """(N, the tokenizer's length, cross_attention_dim): what the text encoder gives each caption."""
    ids = pipe.tokenizer(list(captions), padding="max_length", truncation=True, return_tensors="pt").input_ids
    return torch.cat([pipe.text_encoder(chunk.to(pipe.device))[0].cpu() for chunk in torch.split(ids, 256)])


def _resampler(pipe: Any) -> Any:
    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    if projection.latents.shape[1] != pipe.tokenizer.model_max_length:
        raise ValueError("the resampler must give as many tokens as the tokenizer's length")
    return projection


def _targets(pipe: Any, captions: Sequence[str]) -> torch.Tensor:
    """The captions' states, then the empty caption's (the unguided input's target, last as in fit_to_targets)."""
    return torch.cat([caption_states(pipe, captions), caption_states(pipe, [""])])


SHAPE_TEMPERATURE = 0.02  # one shape word changes a caption's states by 0.05-0.23 (mean squared)


def shape_contrast(
    pipe: Any, scenes: Sequence[Scene]
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A loss for fit_to_targets: each scene's tokens must be nearer its own caption's states than the
    same caption with its first shape drawn as any other shape (cross-entropy over the shapes, the
    distances as logits). The squared error alone lets the tokens sit between the shapes where the
    picture leaves a doubt; that mean renders as a blob."""
    variants = [dataclasses.replace(scene, shapes=(dataclasses.replace(scene.shapes[0], shape=shape), *scene.shapes[1:]))
                for scene in scenes for shape in SHAPES]  # fmt: skip
    states = caption_states(pipe, [variant.caption() for variant in variants])
    states = states.view(len(scenes), len(SHAPES), *states.shape[1:])
    own = torch.tensor([SHAPES.index(scene.shapes[0].shape) for scene in scenes])

    def loss(outputs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        kept = index < len(scenes)  # not the unguided input
        chosen = index[kept]
        distances = (
            (outputs[kept.to(outputs.device), None] - states[chosen].to(outputs.device))
            .pow(2)
            .mean(dim=(2, 3))
        )
        return F.cross_entropy(-distances / SHAPE_TEMPERATURE, own[chosen].to(outputs.device))

    return loss


def regress_to_captions(
    pipe: Any,
    encodings: torch.Tensor,
    unguided: torch.Tensor,
    scenes: Sequence[Scene],
    steps: int,
    generator: torch.Generator,
    *,
    shape_weight: float = 0.0,
) -> float:
    """Fit the loaded adapter's resampler so each of `encodings` (the encoder's hidden states of the
    `scenes`' pictures) gives its caption's states, and `unguided` (what the pipeline's unguided pass is
    given) the empty caption's; with `shape_weight`, shape_contrast's loss is added at that weight.
    Returns the final mean squared error."""
    projection = _resampler(pipe)
    inputs = torch.cat([encodings, unguided[None]])
    captions = [scene.caption() for scene in scenes]
    targets = _targets(pipe, captions)
    extra = None
    if shape_weight:
        contrast = shape_contrast(pipe, scenes)

        def extra(outputs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return shape_weight * contrast(outputs, index)

    return fit_to_targets(
        projection, inputs, targets, steps, generator, batch=64, one_cycle=True, extra_loss=extra
    )


class HiddenStates(torch.nn.Module):
    """The encoder's penultimate hidden states (what the pipeline's `encode_image` gives a
    hidden-state adapter) for CLIP-normalised pixels, with gradients."""

    def __init__(self, encoder: CLIPVisionModelWithProjection) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        states: torch.Tensor = self.encoder(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
        return states


def regress_through_encoder(
    pipe: Any,
    encoder: CLIPVisionModelWithProjection,
    pictures: torch.Tensor,
    captions: Sequence[str],
    steps: int,
    generator: torch.Generator,
) -> float:
    """As regress_to_captions, the image encoder trained too: `pictures` ([-1, 1]) through the
    encoder and the resampler onto their captions' states, an all-zero input (the unguided pass's)
    onto the empty caption's. Measured on the second model: the squared error falls (0.221 -> 0.142)
    but what falls is the background's and the place's, not the shape's (the tokens name it no more
    often, bench/RESULTS.md, "Session 23"); shape_contrast on a well-read encoder is what helped."""
    projection = _resampler(pipe)
    encoder.train(True)
    encoder.requires_grad_(True)
    zero = torch.zeros(1, 3, ENCODER_SIDE, ENCODER_SIDE)  # the pipeline's unguided picture, normalised
    inputs = torch.cat([clip_pixels(pictures), zero])
    targets = _targets(pipe, captions)
    model = torch.nn.Sequential(HiddenStates(encoder), projection)
    try:
        return fit_to_targets(model, inputs, targets, steps, generator, batch=64, one_cycle=True)
    finally:
        encoder.requires_grad_(False)
        encoder.train(False)
