"""Decoding latents with the picture's frame inside them: one latent cell of each edge's own values
is added around the latents, decoded, and cut off again.

A VAE decoder's convolutions pad with zeros, and SD's encoder pads only the right and bottom edges,
so the outermost pixels are the decoder's guess from one side. On SD's 512+ px pictures that is
invisible; on the bundled model's 128 px it is a colour fringe in the corners and a line along the
right edge, most of it in the VAE's own round trip of a picture without any (bench/RESULTS.md,
session 33). Decoded with a replicated cell around them, the edges are the decoder's inside, where it
is good; the decoder is then fine-tuned in that regime (finetune_decoder --edge-padding).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DecoderOutput

CELLS = 1  # latent cells added on each side


def decoder_scale(vae: AutoencoderKL) -> int:
    """Pixels per latent cell: the decoder upsamples by 2 in every block but the last."""
    return int(2 ** (len(vae.config.block_out_channels) - 1))


def pad_decoder_edges(vae: AutoencoderKL, cells: int = CELLS) -> None:
    """Makes `vae` decode every latent with `cells` replicated latent cells on each side, cropped from
    the picture after: through `vae.decode`, and so through every pipeline that shares this VAE.
    Idempotent; the weights and the config are untouched (a saved VAE is saved as it was)."""
    if getattr(vae, "edge_padding_cells", 0):
        return
    unpadded = vae._decode
    margin = cells * decoder_scale(vae)

    def _decode(z: torch.Tensor, return_dict: bool = True) -> Any:
        padded = torch.nn.functional.pad(z, (cells,) * 4, mode="replicate")
        sample = unpadded(padded, return_dict=False)[0][..., margin:-margin, margin:-margin]
        return DecoderOutput(sample=sample) if return_dict else (sample,)

    vae._decode = _decode
    vae.edge_padding_cells = cells
