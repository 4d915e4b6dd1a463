"""A tiny random Flux model in diffusers' layout, built offline: a two-block Flux transformer (with
the guidance embedding of Flux dev), a 16-channel VAE without quant convs (Flux's shape), the tiny
CLIP text encoder, and a tiny T5 encoder with a Unigram tokenizer made here from the tiny words (a
T5 tokenizer cannot be downloaded). For tests of every Flux operation; no picture it makes means
anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxFillPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
)
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers.processors import TemplateProcessing
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from generation.models.tiny import TINY_EMBED_DIM, TINY_WORDS, build_tiny_text_encoder, build_tiny_tokenizer

T5_MAX_TOKENS = 64
_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1, "in_channels": 64, "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 16,
    "num_attention_heads": 2, "joint_attention_dim": TINY_EMBED_DIM, "pooled_projection_dim": TINY_EMBED_DIM,
    "guidance_embeds": True, "axes_dims_rope": (4, 6, 6),
}  # fmt: skip


def build_tiny_t5_tokenizer() -> T5Tokenizer:
    """T5's tokenizer shape (SentencePiece-style Unigram, `▁` word starts, `</s>` appended, `<pad>` 0)
    over the tiny words, with single letters so that any text tokenizes."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("▁" + word, -1.0) for word in TINY_WORDS] + [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz▁"]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5Tokenizer(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0,
        model_max_length=T5_MAX_TOKENS,
    )  # fmt: skip


def build_tiny_flux_pipeline(seed: int = 0) -> FluxPipeline:
    torch.manual_seed(seed)
    clip_tokenizer = build_tiny_tokenizer()
    t5_tokenizer = build_tiny_t5_tokenizer()
    t5 = T5EncoderModel(
        T5Config(vocab_size=len(t5_tokenizer), d_model=TINY_EMBED_DIM, d_kv=8, d_ff=37, num_layers=2,
                 num_heads=4, pad_token_id=0, eos_token_id=1)
    )  # fmt: skip
    transformer = FluxTransformer2DModel(**_TRANSFORMER)
    vae = AutoencoderKL(
        block_out_channels=(16, 16, 32, 32), layers_per_block=1, latent_channels=16, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
    )  # fmt: skip
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        vae=vae,
        text_encoder=build_tiny_text_encoder(clip_tokenizer),
        tokenizer=clip_tokenizer,
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )


def save_tiny_flux_fill_model(folder: Path, seed: int = 1) -> Path:
    """A Fill model for the tiny Flux: its transformer also takes the masked picture's latents and the
    mask (64 + 64 + 256 packed channels); the rest is the tiny Flux's, as FLUX.1 Fill's repository has."""
    base = build_tiny_flux_pipeline(seed)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(**_TRANSFORMER | {"in_channels": 384, "out_channels": 64})
    components = {name: getattr(base, name) for name in ("scheduler", "vae", "text_encoder", "tokenizer",
                                                         "text_encoder_2", "tokenizer_2")}  # fmt: skip
    FluxFillPipeline(transformer=transformer, **components).save_pretrained(folder, safe_serialization=True)
    return folder


def save_tiny_flux_model(folder: Path, seed: int = 0) -> Path:
    """Saved, then loaded by whoever uses it: a model built in memory is in training mode (dropout)."""
    build_tiny_flux_pipeline(seed).save_pretrained(folder, safe_serialization=True)
    return folder
