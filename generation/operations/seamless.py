"""Seamless tiling (--tile): the denoiser's convolutions pad circularly, so the latent wraps around at
its edges, and the VAE decodes that latent wrapped, so the picture does too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DecoderOutput
from torch import nn

# Latent pixels of wrapped context each side of the seam: 64 px for SD families. Measured on the
# bundled 128-px model (16 latent pixels), the join's step against the picture's own: margin 2, 6.7
# vs 1.5/255; 4, 8.6; 6, 3.1; 8, 2.1: its decoder's zero-padded border reaches far in.
MAX_WRAP_MARGIN = 8


@contextmanager
def seamless_tiling(*models: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, the models' Conv2d layers pad circularly; their own modes are restored after."""
    if not enabled:
        yield
        return
    convs = [module for model in models for module in model.modules() if isinstance(module, nn.Conv2d)]
    saved = [conv.padding_mode for conv in convs]
    try:
        for conv in convs:
            conv.padding_mode = "circular"
        yield
    finally:
        for conv, mode in zip(convs, saved, strict=True):
            conv.padding_mode = mode


@contextmanager
def tileable_rendering(unet: nn.Module, vae: nn.Module) -> Iterator[None]:
    """What --tile changes: the UNet pads circularly; the VAE decodes the latent wrapped by a margin and
    the margin is cut off again. The decoder is not given circular padding: decoders are trained with
    zeros at their borders and lean on them (the bundled 128-px model's draws halos and bands with
    circular padding), while a wrapped latent puts the seam in the middle of what the decoder sees."""
    with seamless_tiling(unet), wrapped_decoding(vae):
        yield


def wrap_margin(latent_side: int) -> int:
    """Latent pixels of wrapped context on each side: half the side, at most MAX_WRAP_MARGIN."""
    return max(1, min(MAX_WRAP_MARGIN, latent_side // 2))


@contextmanager
def wrapped_decoding(vae: Any) -> Iterator[None]:
    """Within the block, `vae.decode` decodes its latent padded circularly and crops the picture back."""
    plain = vae.decode  # the bound method; the instance attribute set below shadows it

    def decode(latents: torch.Tensor, *args: Any, return_dict: bool = True, **kwargs: Any) -> Any:
        margin = wrap_margin(min(latents.shape[-2:]))
        wrapped = F.pad(latents, (margin, margin, margin, margin), mode="circular")
        sample = plain(wrapped, *args, return_dict=False, **kwargs)[0]
        scale = sample.shape[-1] // wrapped.shape[-1]  # the decoder's upscaling (8 for SD families)
        cut = margin * scale
        sample = sample[..., cut : sample.shape[-2] - cut, cut : sample.shape[-1] - cut]
        return DecoderOutput(sample=sample) if return_dict else (sample,)

    vae.decode = decode
    try:
        yield
    finally:
        del vae.decode
