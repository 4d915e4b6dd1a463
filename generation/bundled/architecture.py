"""The bundled model's components: standard diffusers / transformers classes at a small size.

64x64 images, a VAE that downsamples by 4 (16x16x4 latents), a 3-layer CLIP text encoder over the
dataset's own vocabulary, and a three-level UNet with cross-attention in its two lower levels.
"""

from __future__ import annotations

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from generation.bundled.dataset import vocabulary
from generation.models.schedulers import sd_noise_schedule
from generation.vocab import build_clip_tokenizer, clip_text_encoder

IMAGE_SIZE = 64
TEXT_DIM = 64


def build_tokenizer() -> CLIPTokenizer:
    return build_clip_tokenizer(vocabulary())


def build_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    return clip_text_encoder(tokenizer, width=TEXT_DIM, layers=3, heads=4, mlp=4 * TEXT_DIM)


def build_vae() -> AutoencoderKL:
    return AutoencoderKL(
        sample_size=IMAGE_SIZE,
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        norm_num_groups=16,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
    )


def build_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4,
        in_channels=4,
        out_channels=4,
        block_out_channels=(64, 128, 128),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def build_scheduler() -> DDIMScheduler:
    """SD's own noise schedule, so every scheduler name works on the bundled model as on SD 1.x."""
    return sd_noise_schedule()
