"""What the UNet is conditioned on while training, per model family, made exactly as the family's
pipeline makes it at inference (so a token learnt here means the same when a job uses it):

- SD 1.x/2.x: the text encoder's last hidden state;
- SDXL: both encoders' penultimate hidden states side by side, the second encoder's projected
  (pooled) output, and the six size/crop numbers (`time_ids`), here the square training crop.

Gradients flow through the encoders: LoRA on a text encoder and textual inversion train through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

TextEncoders = list[tuple[Any, Any]]  # (tokenizer, text encoder) pairs in the pipeline's order


def text_encoders(pipeline: Any) -> TextEncoders:
    """The pipeline's (tokenizer, text encoder) pairs: one for SD 1.x, two for SDXL."""
    pairs = [(pipeline.tokenizer, pipeline.text_encoder)]
    if getattr(pipeline, "text_encoder_2", None) is not None:
        pairs.append((pipeline.tokenizer_2, pipeline.text_encoder_2))
    return pairs


@dataclass(frozen=True)
class Conditioning:
    """Text conditioning for a batch (one row per picture)."""

    hidden: torch.Tensor  # (batch, tokens, width)
    pooled: torch.Tensor | None = None  # SDXL: (batch, projection width)

    def expand(self, count: int) -> Conditioning:
        return Conditioning(
            self.hidden.expand(count, -1, -1), None if self.pooled is None else self.pooled.expand(count, -1)
        )

    def __add__(self, other: Conditioning) -> Conditioning:
        """Both batches, one after the other (instance pictures, then class pictures)."""
        pooled = None
        if self.pooled is not None and other.pooled is not None:
            pooled = torch.cat([self.pooled, other.pooled])
        return Conditioning(torch.cat([self.hidden, other.hidden]), pooled)

    def unet_arguments(self, side: int, dtype: torch.dtype) -> dict[str, Any]:
        """The UNet's keyword arguments for pictures of `side` pixels, uncropped."""
        arguments: dict[str, Any] = {"encoder_hidden_states": self.hidden.to(dtype)}
        if self.pooled is not None:
            batch = self.hidden.shape[0]
            # original size, crop top-left, target size: as the SDXL pipeline sends them.
            time_ids = torch.tensor([[side, side, 0, 0, side, side]], dtype=dtype, device=self.hidden.device)
            arguments["added_cond_kwargs"] = {
                "text_embeds": self.pooled.to(dtype),
                "time_ids": time_ids.repeat(batch, 1),
            }
        return arguments


def encode_for_training(encoders: TextEncoders, prompts: list[str]) -> Conditioning:
    """The family's prompt conditioning (without clip skip), with gradients."""
    if len(encoders) == 1:
        tokenizer, text_encoder = encoders[0]
        hidden: torch.Tensor = text_encoder(_token_ids(tokenizer, prompts, text_encoder.device))[0]
        return Conditioning(hidden)
    states, pooled = [], None
    for tokenizer, text_encoder in encoders:
        output = text_encoder(_token_ids(tokenizer, prompts, text_encoder.device), output_hidden_states=True)
        states.append(output.hidden_states[-2])
        pooled = output[0]  # the last encoder's projected output (diffusers' SDXL encode_prompt)
    return Conditioning(torch.cat(states, dim=-1), pooled)


def _token_ids(tokenizer: Any, prompts: list[str], device: torch.device) -> torch.Tensor:
    ids: torch.Tensor = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return ids.to(device)
