"""dreamcord's own small text-to-image model, shipped as package data in diffusers' folder layout.

It is the default model when none is configured, and loads through the same code as any checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from generation.config import IpAdapterConfig, ModelConfig, TurboConfig

BUNDLED_MODEL_NAME = "bundled"
BUNDLED_MODEL_DIR = Path(__file__).parent / "model"
BUNDLED_IP_ADAPTER_DIR = Path(__file__).parent / "ip_adapter"  # generation/bundled/train_ip_adapter.py
BUNDLED_IP_ADAPTER_FILE = "ip-adapter.safetensors"
BUNDLED_DESCRIBER = "bundled"  # a ModelConfig.describer value: generation/bundled/describer.py
# Its 4x super-resolution network (Real-ESRGAN's compact architecture; train_upscaler.py).
BUNDLED_UPSCALER = Path(__file__).parent / "upscaler" / "4x-dreamcord-compact.safetensors"


def scene_variety(model: Path) -> float:
    """The `variety` of the scenes a bundled model folder was trained on (dataset.sample_scene's),
    from its training_config.json; 0 for the first model, whose config predates it."""
    config = model / "training_config.json"
    return float(json.loads(config.read_text()).get("variety", 0.0)) if config.is_file() else 0.0


def decodes_edge_padded(model: Path) -> bool:
    """Whether a bundled model folder's decoder was fine-tuned to decode with a latent cell of padding
    around the latents (finetune_decoder --edge-padding; generation.models.edge_padding)."""
    config = model / "training_config.json"
    return bool(json.loads(config.read_text()).get("vae_edge_padding", False)) if config.is_file() else False


def bundled_model_config() -> ModelConfig:
    return ModelConfig(
        name=BUNDLED_MODEL_NAME,
        source=str(BUNDLED_MODEL_DIR),
        scheduler="euler_a",
        steps=20,
        guidance=5.0,
        description="dreamcord's bundled shapes-and-colours model (works offline)",
        # Its decoder decodes with a latent cell of padding around the latents: no corner or edge
        # carries a mark of its own then (model card step 6; bench/RESULTS.md, session 33).
        vae_edge_padding=decodes_edge_padded(BUNDLED_MODEL_DIR),
        # --turbo: 8 steps of DPM++ 2M (2.5x fewer; its quality cost is measured in bench/bench_turbo.py).
        turbo=TurboConfig(steps=8, scheduler="dpmpp_2m"),
        # Upscale: its own super-resolution network first. Subtle is that network alone: its detail
        # passes change what 10% of 40 pictures show (the network alone: none, 1.58x sharper than
        # Lanczos and 0.8/255 from it; bench/bench_upscale_quality.py on the 128-px model). Creative
        # keeps its detail passes: redrawing is its point.
        upscaler=str(BUNDLED_UPSCALER),
        upscale_strengths={"subtle": 0.0},
        describer=BUNDLED_DESCRIBER,  # /describe: what its evaluator reads, worded as its captions
        # Image prompts: its own IP-Adapter Plus (train_ip_adapter.py). Scale 1.5 at --iw 1: colour and
        # shape both right in 74 of 100 pictures (69 at 2.0; bench/RESULTS.md, sessions 25, 31 and 32). No
        # layer set carries the picture's colour alone (on either model; the second's highest-resolution
        # up block carries its shape), so --sref uses the down and mid blocks, which leave the text in
        # charge.
        ip_adapter=IpAdapterConfig(
            source=str(BUNDLED_IP_ADAPTER_DIR),
            weight_name=BUNDLED_IP_ADAPTER_FILE,
            scale=1.5,
            style_scales={"down": {"block_1": [1.0], "block_2": [1.0]}, "mid": 1.0},
        ),
        # A 9 M-parameter model learns fast and needs strong steps. LoRA, measured on the second model
        # (5 photos of a teal hexagon, the slow test's palette gain; bar 30%): 300 steps at rank 4 with 16
        # prior-preservation images 18.6%; without them 28.9%; rank 16 600 steps 34.9%. Its class noun
        # ("shape") is too general for DreamBooth's prior to be worth half of each batch. Once prompts
        # without a background were understood (session 29), "a shape" itself came nearer the photos and
        # the UNet-only LoRA's gain fell to 22% (rate 2e-3: 29%); LoRA on the text encoder too, at 2e-3:
        # 35% (rank 8: 38%; 1.5e-3: 23%; bench/RESULTS.md).
        training={
            "lora": {
                "steps": 600,
                "learning_rate": 2e-3,
                "rank": 16,
                "batch_size": 4,
                "class_images": 0,
                "train_text_encoder": True,
            },
            "embedding": {"steps": 800, "learning_rate": 0.2, "vectors": 4, "batch_size": 8},
        },
    )
