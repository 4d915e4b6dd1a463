"""Low-resolution previews of a picture while it is being denoised, for the progress message.

A step callback that also implements `PreviewSink` gets, when it says one is due, the first picture
of the batch as it is now: its current latents decoded by the model's own VAE and shrunk. The sink
decides how often (the worker: every 1.5 s at most), so the cost stays a small share of the job.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from generation.outputs import encode_png

PREVIEW_SIDE = 128


@runtime_checkable
class PreviewSink(Protocol):
    def preview_due(self) -> bool: ...

    def preview(self, png: bytes) -> None: ...


@torch.no_grad()
def preview_png(pipeline: Any, latents: torch.Tensor, size: tuple[int, int]) -> bytes:
    """The batch's first picture (`size` pixels) as it stands, decoded from its latents, at most
    PREVIEW_SIDE a side. Flux packs its latents into a sequence of 2x2 patches: unpacked first."""
    vae = pipeline.vae
    latents = latents[:1]
    if latents.ndim == 3:
        width, height = size
        latents = pipeline._unpack_latents(latents, height, width, pipeline.vae_scale_factor)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor + shift, return_dict=False)[0]
    picture = pipeline.image_processor.postprocess(decoded, output_type="pil")[0]
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return encode_png(picture)
