"""Low-resolution previews of a picture while it is being denoised, for the progress message.

A step callback that also implements `PreviewSink` gets, when it says one is due, the first picture
of the batch as it is now, decoded by the model's preview decoder (generation.models.previews). The
sink decides how often (the worker: every 1.5 s at most).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from generation.models.previews import PreviewDecoder
from generation.outputs import encode_png

PREVIEW_SIDE = 128


@runtime_checkable
class PreviewSink(Protocol):
    def preview_due(self) -> bool: ...

    def preview(self, png: bytes) -> None: ...


@runtime_checkable
class BatchPreviewSink(Protocol):
    """The progress of several jobs sharing one call: a preview of each job's first picture."""

    rows: tuple[int, ...]  # each job's first picture's place in the batch

    def preview_due(self) -> bool: ...

    def previews(self, pngs: list[bytes]) -> None: ...


def preview_png(
    decoder: PreviewDecoder, pipeline: Any, latents: torch.Tensor, size: tuple[int, int]
) -> bytes:
    """The batch's first picture (`size` pixels) as it stands, at most PREVIEW_SIDE a side. Flux packs
    its latents into a sequence of 2x2 patches: unpacked first."""
    latents = latents[:1]
    if latents.ndim == 3:
        width, height = size
        latents = pipeline._unpack_latents(latents, height, width, pipeline.vae_scale_factor)
    picture = decoder(latents)
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return encode_png(picture)
