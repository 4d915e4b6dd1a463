"""The bundled IP-Adapter's head start, before its diffusion steps (train_ip_adapter.py): an image
encoder that reads the scene, then a projection whose tokens act as the caption's own states do.
Without the second the diffusion steps start from nothing they can use (bench/RESULTS.md, session 21:
1 of 40 pictures right at step 250 from a random projection, 18 from a fitted one)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import torch
from transformers import CLIPVisionModelWithProjection

from generation.bundled import evaluator
from generation.bundled.caption_state_regression import regress_through_encoder, regress_to_captions
from generation.bundled.dataset import Scene, sample_scene
from generation.bundled.image_encoder import (
    ENCODER_SIDE,
    AttributeHeads,
    continue_encoder,
    encoder_pictures,
    pretrain_encoder,
)
from generation.bundled.image_token_alignment import align_projection
from generation.bundled.training_data import as_model_input, render_pictures
from generation.models.image_prompts import ProjectionKind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadStart:
    """`encoder_steps`: stage 1 of a fresh encoder (attribute heads on one-shape scenes).
    `encoder_scenes`: the scenes stage 1 (and its continuation, and the regression through the
    encoder) draws. `more_encoder_steps`: stage 1 continued on an `--init` adapter's encoder, on as
    many scenes and half as many plain 64-px ones (image_encoder.continue_encoder).
    `align_steps`: fitting a fresh projection to the captions' states (pooled: image_token_alignment;
    plus: caption_state_regression; 0: none). `regress_encoder`: a plus regression trains the encoder
    too. `shape_contrast`: the weight of caption_state_regression.shape_contrast in the plus
    regression of the resampler alone."""

    encoder_steps: int = 2000
    encoder_scenes: int = 30000
    more_encoder_steps: int = 0
    align_steps: int = 1000
    regress_encoder: bool = False
    shape_contrast: float = 0.0

    def refusal(self, *, fresh: bool, resume: bool, init: bool, projection: ProjectionKind) -> str | None:
        """Why these options cannot be honoured for this run (None: they can). `fresh`: the projection
        starts new (no adapter given, or one of another kind); `init`: an adapter to start from."""
        if self.shape_contrast and (
            not fresh or resume or projection != "plus" or self.regress_encoder or not self.align_steps
        ):
            return (
                "--shape-contrast weighs the regression of a fresh plus adapter's resampler alone "
                "(--projection plus, --align-steps, without --regress-encoder): nothing here would use it"
            )
        if self.more_encoder_steps and (not init or resume or not fresh):
            return (
                "more encoder steps need an --init adapter of another kind (its projection starts fresh); "
                "a --resume goes on with the encoder its checkpoint holds"
            )
        return None

    def regresses(self, *, fresh: bool, resume: bool, projection: ProjectionKind) -> bool:
        """Whether a plus resampler is regressed onto the captions' states in this run."""
        return fresh and not resume and bool(self.align_steps) and projection == "plus"

    def train_encoder(
        self,
        pipe: Any,
        encoder: CLIPVisionModelWithProjection,
        *,
        new_encoder: bool,
        regressing: bool,
        variety: float,
        seed: int,
        generator: torch.Generator,
    ) -> None:
        """The encoder's stages, each on scenes of its own generator (the adapter's stay as they were):
        stage 1 for a `new_encoder`, its continuation, the regression through it."""
        side = pipe.vae.config.sample_size
        if new_encoder and self.encoder_steps:
            one_shape_rng = random.Random(seed + 2)
            alone = [
                sample_scene(one_shape_rng, max_shapes=1, variety=variety) for _ in range(self.encoder_scenes)
            ]
            heads = AttributeHeads(pipe.unet.config.cross_attention_dim).to(encoder.device)
            pictures = encoder_pictures(alone, side)
            pretrain_encoder(
                encoder, heads, pictures, evaluator.labels_of(alone), self.encoder_steps, generator
            )
        if self.more_encoder_steps:
            more_rng = random.Random(seed + 4)
            alone = [
                sample_scene(more_rng, max_shapes=1, variety=variety) for _ in range(self.encoder_scenes)
            ]
            # Half as many plain 64-px scenes: most uploads are pictures like these, not the model's own.
            plain = [sample_scene(more_rng, max_shapes=1) for _ in range(self.encoder_scenes // 2)]
            pictures = torch.cat(
                [encoder_pictures(alone, side), as_model_input(render_pictures(plain, ENCODER_SIDE))]
            )
            labels = evaluator.labels_of(alone + plain)
            continue_encoder(encoder, pictures, labels, self.more_encoder_steps, generator)
        if regressing and self.regress_encoder:
            caption_rng = random.Random(seed + 3)
            scenes = [
                sample_scene(caption_rng, max_shapes=2, variety=variety) for _ in range(self.encoder_scenes)
            ]
            pictures = encoder_pictures(scenes, side)
            captions = [scene.caption() for scene in scenes]
            error = regress_through_encoder(pipe, encoder, pictures, captions, self.align_steps, generator)
            log.info(
                "encoder and resampler regressed onto the captions' states: mean squared error %.4f", error
            )

    def fit_projection(
        self,
        pipe: Any,
        embeddings: torch.Tensor,
        unguided: torch.Tensor,
        drawn: list[Scene],
        *,
        fresh: bool,
        regressing: bool,
        projection: ProjectionKind,
        generator: torch.Generator,
    ) -> None:
        """A fresh pooled projection aligned, a plus resampler regressed (unless the encoder's
        regression did it), on the adapter's own scenes `drawn` and their `embeddings`."""
        if fresh and self.align_steps and projection == "pooled":
            single = [index for index, scene in enumerate(drawn) if len(scene.shapes) == 1]
            one_shape = [drawn[index] for index in single]
            error = align_projection(pipe, embeddings[single], one_shape, self.align_steps, generator)
            log.info("image tokens fitted to the caption's token states: mean squared error %.4f", error)
        elif regressing and not self.regress_encoder:
            error = regress_to_captions(
                pipe,
                embeddings,
                unguided,
                drawn,
                self.align_steps,
                generator,
                shape_weight=self.shape_contrast,
            )
            log.info("resampler tokens regressed onto the captions' states: mean squared error %.4f", error)
