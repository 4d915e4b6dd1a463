"""The bundled IP-Adapter's image encoder: a small `CLIPVisionModelWithProjection` trained here from
scratch (no pretrained one can be downloaded), first alone on the scenes' attributes (stage 1 of
train_ip_adapter.py), and what it gives the adapter: the pooled image embedding, or one hidden state
per patch (the pipeline's `encode_image` reads the penultimate layer's for adapters that take patches).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from generation.bundled import evaluator
from generation.bundled.dataset import Scene
from generation.bundled.training_data import as_model_input, render_pictures

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIPImageProcessor's defaults, which the pipeline uses
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ENCODER_SIDE = 64  # enough to read one or two shapes; 128 px would cost the encoder 4x the tokens


def build_image_encoder(embed_dim: int) -> CLIPVisionModelWithProjection:
    config = CLIPVisionConfig(
        hidden_size=96, intermediate_size=192, num_hidden_layers=3, num_attention_heads=4,
        image_size=ENCODER_SIDE, patch_size=4, projection_dim=embed_dim,
    )  # fmt: skip
    # Patches of 4, not 8: shapes placed anywhere (the second model's scenes) fall across patch edges,
    # and after 1,000 steps patches of 8 read their shape 47% of the time, patches of 4 74%.
    return CLIPVisionModelWithProjection(config)


def clip_pixels(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] pictures as the image encoder sees them through CLIPImageProcessor (resized bicubic to
    ENCODER_SIDE, CLIP's normalisation)."""
    if images.shape[-1] != ENCODER_SIDE:
        size = (ENCODER_SIDE, ENCODER_SIDE)
        images = F.interpolate(images, size=size, mode="bicubic", antialias=True).clamp(-1, 1)
    mean = torch.tensor(CLIP_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=images.device).view(1, 3, 1, 1)
    return ((images + 1) / 2 - mean) / std


class AttributeHeads(torch.nn.Module):
    """What the image embedding must tell apart (the evaluator's heads: shape, colour, size, place).
    Trained with the encoder, so its embedding carries what a picture prompt should pass on: the
    diffusion loss alone taught it colour (65%) but hardly shape (18%) in 3000 steps."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.heads = torch.nn.ModuleDict(
            {name: torch.nn.Linear(embed_dim, len(labels)) for name, labels in evaluator.HEADS.items()}
        )

    def loss(self, embeds: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        losses = [F.cross_entropy(head(embeds), labels[name]) for name, head in self.heads.items()]
        return torch.stack(losses).mean()


def pretrain_encoder(
    encoder: CLIPVisionModelWithProjection,
    heads: AttributeHeads,
    pictures: torch.Tensor,
    labels: dict[str, torch.Tensor],
    steps: int,
    generator: torch.Generator,
    *,
    max_lr: float = 2e-3,
    warmup: float = 0.3,
) -> None:
    """Stage 1, without the UNet (fast): the encoder learns to read the attributes of one-shape scenes
    (`pictures` in [-1, 1]; whose attributes a two-shape scene's label names is a coin toss), with a
    one-cycle rate (`warmup`: its rising share): 30,000 scenes and that schedule read shape 87% after
    1,500 steps, where the 4,800 one-shape scenes of the adapter's set at a constant rate read 76%."""
    optimizer = torch.optim.AdamW([*encoder.parameters(), *heads.parameters()], lr=max_lr, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=max(steps, 1), pct_start=warmup
    )
    progress = tqdm(range(steps), desc="image encoder")
    for step in progress:
        index = torch.randint(len(pictures), (64,), generator=generator)
        batch = clip_pixels(pictures[index].to(encoder.device))
        embeds = encoder(pixel_values=batch).image_embeds
        loss = heads.loss(embeds, {name: values[index].to(encoder.device) for name, values in labels.items()})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward carries no annotations
        optimizer.step()
        schedule.step()
        if step % 50 == 0:
            progress.set_postfix(loss=f"{loss.item():.3f}")


def continue_encoder(
    encoder: CLIPVisionModelWithProjection,
    pictures: torch.Tensor,
    labels: dict[str, torch.Tensor],
    steps: int,
    generator: torch.Generator,
) -> None:
    """Stage 1 again on a trained encoder (an --init adapter's; its heads were not saved): fresh heads
    are first fitted on its frozen embeddings of the first 6,000 pictures, so their random start does
    not undo what it reads, then both train at half stage 1's rate. On the second model's pooled
    adapter's encoder, with a third of the scenes plain 64-px ones, shape read on plain 64-px scenes
    went from 81% to 97% in 1,500 steps (a probe running this recipe over a 3,000-step cycle, stopped
    there; bench/RESULTS.md, "Session 23")."""
    heads = AttributeHeads(encoder.config.projection_dim).to(encoder.device)
    encoder.train(False)
    with torch.no_grad():
        embeds = torch.cat([encoder(pixel_values=clip_pixels(chunk.to(encoder.device))).image_embeds
                            for chunk in torch.split(pictures[:6000], 256)])  # fmt: skip
    first = {name: values[:6000].to(encoder.device) for name, values in labels.items()}
    optimizer = torch.optim.Adam(heads.parameters(), lr=1e-2)
    for _ in range(300):
        loss = heads.loss(embeds, first)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward carries no annotations
        optimizer.step()
    encoder.train(True)
    pretrain_encoder(encoder, heads, pictures, labels, steps, generator, max_lr=1e-3, warmup=0.1)


def encoder_pictures(scenes: list[Scene], side: int) -> torch.Tensor:
    """Stage 1's pictures at ENCODER_SIDE in [-1, 1]: half drawn at that size, as a small upload is,
    half at the model's `side` and resized, as its own pictures are (Vary's, /blend's). Drawn at the
    model's side only, an encoder read shape 86% on those and 75% on 64-px drawings."""
    half = len(scenes) // 2
    small = as_model_input(render_pictures(scenes[:half], ENCODER_SIDE))
    large = as_model_input(render_pictures(scenes[half:], side))
    if side != ENCODER_SIDE:
        size = (ENCODER_SIDE, ENCODER_SIDE)
        large = F.interpolate(large, size=size, mode="bicubic", antialias=True).clamp(-1, 1)
    return torch.cat([small, large])


@torch.no_grad()
def encode_pictures(
    encoder: CLIPVisionModelWithProjection, images: torch.Tensor, *, patches: bool = False
) -> torch.Tensor:
    """What the pipeline's `encode_image` gives an adapter for `images` ([-1, 1], on the CPU): the
    pooled image embeddings, or with `patches` the penultimate layer's hidden states (CLS + one per
    patch)."""
    encoder.train(False)  # as .eval(), which transformers leaves untyped
    return torch.cat([_encoded(encoder, clip_pixels(chunk.to(encoder.device)), patches).cpu()
                      for chunk in torch.split(images, 128)])  # fmt: skip


@torch.no_grad()
def unconditional_encoding(encoder: CLIPVisionModelWithProjection, *, patches: bool) -> torch.Tensor:
    """What the pipeline feeds the unguided pass: zeros for a pooled embedding, the encoder's hidden
    states of an all-zero (normalised) picture for patches (diffusers' `encode_image`)."""
    encoder.train(False)
    zeros = torch.zeros(1, 3, ENCODER_SIDE, ENCODER_SIDE, device=encoder.device)
    encoded = _encoded(encoder, zeros, patches)
    return encoded.cpu() if patches else torch.zeros_like(encoded).cpu()


def _encoded(encoder: CLIPVisionModelWithProjection, pixels: torch.Tensor, patches: bool) -> torch.Tensor:
    if patches:
        hidden: torch.Tensor = encoder(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
        return hidden
    embeds: torch.Tensor = encoder(pixel_values=pixels).image_embeds
    return embeds
