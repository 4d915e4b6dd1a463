"""The bundled model's components: standard diffusers / transformers classes at a small size.

Two designs. The first (`V1`, shipped): 64x64 images, a VAE that downsamples by 4 (16x16x4
latents), a 3-layer CLIP text encoder over the dataset's own vocabulary, and a three-level UNet with
cross-attention in its two lower levels. The second (`V2`, issue 22): 128x128 images through a VAE
that downsamples by 8 (SD's factor), so the UNet works on the same 16x16 latents and a grid costs
about what it did, with cross-attention at every level so the text can say where things go.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from generation.bundled.dataset import vocabulary
from generation.models.schedulers import sd_noise_schedule
from generation.vocab import build_clip_tokenizer, clip_text_encoder

TEXT_DIM = 64


@dataclass(frozen=True)
class Design:
    name: str
    image_size: int
    vae_channels: tuple[int, ...]  # one level per entry; each after the first halves the side
    unet_channels: tuple[int, ...]
    unet_attention: tuple[bool, ...]  # cross-attention at each UNet level, top first
    text_layers: int = 3
    # v-prediction on SD's schedule rescaled to zero terminal SNR (Lin et al. 2023): with SD's own
    # schedule the last step leaves the picture's low frequencies in the noise, the model learns to
    # read the layout from there, and the prompt's "at the top left" is never learned (the first model).
    zero_terminal_snr: bool = False

    @property
    def latent_size(self) -> int:
        return self.image_size >> (len(self.vae_channels) - 1)


V1 = Design("v1", 64, (16, 32, 64), (64, 128, 128), (False, True, True))
V2 = Design(
    "v2", 128, (16, 32, 64, 64), (64, 128, 160), (True, True, True), text_layers=4, zero_terminal_snr=True
)
DESIGNS = {design.name: design for design in (V1, V2)}


def build_tokenizer() -> CLIPTokenizer:
    return build_clip_tokenizer(vocabulary())


def build_text_encoder(tokenizer: CLIPTokenizer, design: Design = V1) -> CLIPTextModel:
    return clip_text_encoder(tokenizer, width=TEXT_DIM, layers=design.text_layers, heads=4, mlp=4 * TEXT_DIM)


def build_vae(design: Design = V1) -> AutoencoderKL:
    levels = len(design.vae_channels)
    return AutoencoderKL(
        sample_size=design.image_size,
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=design.vae_channels,
        layers_per_block=1,
        norm_num_groups=16,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
    )


def build_unet(design: Design = V1) -> UNet2DConditionModel:
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in design.unet_attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(design.unet_attention))
    return UNet2DConditionModel(
        sample_size=design.latent_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=design.unet_channels,
        layers_per_block=1,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def build_scheduler(design: Design = V1) -> DDIMScheduler:
    """SD's own noise schedule, so every scheduler name works on the bundled model as on SD 1.x;
    rescaled to zero terminal SNR, with v-prediction and trailing timesteps (as Lin et al. require so
    sampling starts from pure noise), where the design says so. Every scheduler in
    generation.models.schedulers reads those three keys."""
    schedule = sd_noise_schedule()
    if not design.zero_terminal_snr:
        return schedule
    return DDIMScheduler.from_config(
        schedule.config,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
    )
