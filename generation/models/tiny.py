"""Tiny Stable Diffusion 1.x- and SDXL-layout pipelines with random weights, built offline for fast tests.

They have every component of a real checkpoint (UNet, VAE, CLIP text encoder, tokenizer, scheduler) and
are saved with `save_pretrained`, so tests load them through the same loader as a real model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DDIMScheduler,
    DDPMScheduler,
    StableDiffusionPipeline,
    StableDiffusionUpscalePipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

from generation.models.schedulers import sd_noise_schedule
from generation.vocab import build_clip_tokenizer, clip_text_encoder

if TYPE_CHECKING:  # imported where used: image_prompts imports diffusers' loaders
    from generation.models.image_prompts import ProjectionKind

TINY_WORDS = [
    "a",
    "an",
    "the",
    "photo",
    "of",
    "on",
    "in",
    "at",
    "with",
    "and",
    "red",
    "green",
    "blue",
    "yellow",
    "white",
    "black",
    "circle",
    "square",
    "triangle",
    "star",
    "cat",
    "dog",
    "house",
    "tree",
    "sky",
    "background",
    "small",
    "large",
]
TINY_EMBED_DIM = 32


def build_tiny_tokenizer() -> CLIPTokenizer:
    return build_clip_tokenizer(TINY_WORDS)


def build_tiny_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    return clip_text_encoder(tokenizer, width=TINY_EMBED_DIM, layers=5, heads=4, mlp=37)


def build_tiny_unet(**family: object) -> UNet2DConditionModel:
    """SD 1.x's layout at toy size; `family` adds or overrides what another family's UNet has."""
    layout: dict[str, object] = {
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": (32, 64),
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "cross_attention_dim": TINY_EMBED_DIM,
        "attention_head_dim": (2, 4),
        "norm_num_groups": 32,
    }
    return UNet2DConditionModel(**(layout | family))


def build_tiny_vae() -> AutoencoderKL:
    """Four blocks, so the latent is 1/8 of the image side, as in SD 1.x."""
    return AutoencoderKL(
        sample_size=64,
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )


SafetyVerdict = Literal["flag-all", "flag-none"]


def build_tiny_pipeline(seed: int = 0, safety: SafetyVerdict | None = None) -> StableDiffusionPipeline:
    """A complete SD 1.x-layout pipeline with random weights drawn from `seed` (64 px native); with
    `safety`, a tiny safety checker whose verdict is fixed (to test what happens to flagged images)."""
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    text_encoder = build_tiny_text_encoder(tokenizer)
    unet = build_tiny_unet()
    vae = build_tiny_vae()
    checker, processor = build_tiny_safety_checker(safety) if safety else (None, None)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sd_noise_schedule(),
        safety_checker=checker,
        feature_extractor=processor,
        requires_safety_checker=safety is not None,
    )


def build_tiny_safety_checker(
    verdict: SafetyVerdict,
) -> tuple[StableDiffusionSafetyChecker, CLIPImageProcessor]:
    """diffusers' StableDiffusionSafetyChecker on a tiny CLIP whose concept thresholds fix the verdict:
    cosine similarities lie in [-1, 1], so a threshold of -2 flags every picture and +2 none."""
    vision = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 4,
              "image_size": 32, "patch_size": 8}  # fmt: skip
    text = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 4}
    checker = StableDiffusionSafetyChecker(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)
    )
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(-2.0 if verdict == "flag-all" else 2.0)
        checker.special_care_embeds_weights.fill_(2.0)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return checker, processor


def save_tiny_model(folder: Path, seed: int = 0, safety: SafetyVerdict | None = None) -> Path:
    """Build a tiny pipeline and save it in diffusers' folder layout (safetensors)."""
    build_tiny_pipeline(seed, safety).save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_sdxl_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """A complete SDXL-layout pipeline with random weights (64 px native): two CLIP text encoders
    (the second with a projection, whose pooled output conditions the UNet), a UNet with SDXL's
    `text_time` embedding (pooled text + size and crop conditioning), the tiny VAE and tokenizer."""
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    text_encoder = build_tiny_text_encoder(tokenizer)
    text_encoder_2 = CLIPTextModelWithProjection(text_encoder.config)
    time_embed_dim = 8  # each of SDXL's six size/crop numbers gets this many sinusoidal features
    unet = build_tiny_unet(
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=6 * time_embed_dim + TINY_EMBED_DIM,  # + pooled text
        cross_attention_dim=2 * TINY_EMBED_DIM,  # both encoders' hidden states side by side
    )
    return StableDiffusionXLPipeline(
        vae=build_tiny_vae(),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=build_tiny_tokenizer(),
        unet=unet,
        scheduler=sd_noise_schedule(),
    )


def save_tiny_sdxl_model(folder: Path, seed: int = 0) -> Path:
    build_tiny_sdxl_pipeline(seed).save_pretrained(folder, safe_serialization=True)
    return folder


@torch.no_grad()
def randomise_control_path(
    controlnet: ControlNetModel, seed: int, std: float = 0.5, gain: float = 3.0
) -> ControlNetModel:
    """Make a fresh random ControlNet respond to its control image, as a trained one does.

    Its output convolutions start at zero (it adds exactly nothing), and with default init the
    7-convolution embedding shrinks a sparse edge map to almost nothing (measured: a control moved the
    UNet output by 0.1 % of its size); random outputs and a gain of 3 per embedding conv fix both."""
    generator = torch.Generator().manual_seed(seed)
    embedding = controlnet.controlnet_cond_embedding
    for layer in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block, embedding.conv_out]:
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
    for conv in [embedding.conv_in, *embedding.blocks]:
        conv.weight.mul_(gain)
    return controlnet


def save_tiny_controlnet(folder: Path, seed: int = 0, *, sdxl: bool = False) -> Path:
    """A random ControlNet shaped for the tiny model's UNet (or the tiny SDXL one's; built from it,
    as diffusers' training scripts do), with non-zero output convolutions, saved in diffusers' layout."""
    unet = build_tiny_sdxl_pipeline().unet if sdxl else build_tiny_unet()
    controlnet = ControlNetModel.from_unet(unet)
    randomise_control_path(controlnet, seed)
    controlnet.save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_upscaler(seed: int = 0) -> StableDiffusionUpscalePipeline:
    """A random x4 super-resolution pipeline in the layout of stabilityai/stable-diffusion-x4-upscaler:
    a 7-channel UNet (latents + the low-res picture) with a noise-level embedding, a VAE that
    decodes 4x larger (scaling factor 0.08333, as the pipeline expects)."""
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    text_encoder = build_tiny_text_encoder(tokenizer)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=7,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=text_encoder.config.hidden_size,
        attention_head_dim=8,
        num_class_embeds=351,  # one per noise level 0..max_noise_level
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 32, 64),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        scaling_factor=0.08333,
    )
    return StableDiffusionUpscalePipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        low_res_scheduler=DDPMScheduler(),
        scheduler=DDIMScheduler(),
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        max_noise_level=350,
    )


def save_tiny_upscaler(folder: Path, seed: int = 0) -> Path:
    build_tiny_upscaler(seed).save_pretrained(folder, safe_serialization=True)
    return folder


TINY_IP_ADAPTER_FILE = "ip-adapter.safetensors"


def save_tiny_ip_adapter(
    folder: Path, unet: UNet2DConditionModel, seed: int = 0, *, kind: ProjectionKind = "pooled"
) -> Path:
    """A random IP-Adapter for `unet` as h94/IP-Adapter lays one out: `ip-adapter.safetensors` (an
    `image_proj` and a `to_k_ip`/`to_v_ip` pair per cross-attention layer) and `image_encoder/` (a
    tiny CLIP vision model with a projection), so tests load it through diffusers' own loader.
    `kind`: its projection (image_prompts.PROJECTION_KINDS); "full" and "plus" read the hidden states
    of an encoder with the 257 (16x16 patches and CLS) that diffusers assumes for the full format."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from generation.models.image_prompts import fresh_adapter_state

    torch.manual_seed(seed)
    embed_dim = 16
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         image_size=32 if kind == "pooled" else 64, patch_size=8 if kind == "pooled" else 4,
                         projection_dim=embed_dim)
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(folder / "image_encoder")
    state = fresh_adapter_state(
        unet, embed_dim, 8 if kind == "plus" else 4, seed, kind=kind
    )  # hidden = embed_dim
    flat = {f"{part}.{key}": tensor for part, tensors in state.items() for key, tensor in tensors.items()}
    save_file(flat, folder / TINY_IP_ADAPTER_FILE)
    return folder
