"""dreamcord's own small text-to-image model, shipped as package data in diffusers' folder layout.

It is the default model when none is configured, and loads through the same code as any checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from generation.config import IpAdapterConfig, ModelConfig, TurboConfig

BUNDLED_MODEL_NAME = "bundled"
BUNDLED_MODEL_DIR = Path(__file__).parent / "model"
BUNDLED_IP_ADAPTER_DIR = Path(__file__).parent / "ip_adapter"  # generation/bundled/train_ip_adapter.py
BUNDLED_IP_ADAPTER_FILE = "ip-adapter.safetensors"
BUNDLED_DESCRIBER = "bundled"  # a ModelConfig.describer value: generation/bundled/describer.py


def bundled_model_config() -> ModelConfig:
    return ModelConfig(
        name=BUNDLED_MODEL_NAME,
        source=str(BUNDLED_MODEL_DIR),
        scheduler="euler_a",
        steps=20,
        guidance=5.0,
        description="dreamcord's bundled shapes-and-colours model (works offline)",
        # --turbo: 8 steps of DPM++ 2M (2.5x fewer; its quality cost is measured in bench/bench_turbo.py).
        turbo=TurboConfig(steps=8, scheduler="dpmpp_2m"),
        describer=BUNDLED_DESCRIBER,  # /describe: what its evaluator reads, worded as its captions
        # Image prompts: its own IP-Adapter (train_ip_adapter.py). Scale 1.5 at --iw 1 measured best
        # (colour and shape both right: 68% at 1.5, 52% at 1.0, 67% at 2.0, over 60 pictures). No layer
        # of it carries colour alone (the text's colour wins in every layer set tried), so --sref uses
        # the down and mid blocks, which leave the text's shape in charge (bench_image_prompts.py).
        ip_adapter=IpAdapterConfig(
            source=str(BUNDLED_IP_ADAPTER_DIR),
            weight_name=BUNDLED_IP_ADAPTER_FILE,
            scale=1.5,
            style_scales={"down": {"block_1": [1.0], "block_2": [1.0]}, "mid": 1.0},
        ),
        # A 7 M-parameter model at 64 px learns fast and needs strong steps: measured in bench_training.py.
        training={
            "lora": {"steps": 300, "learning_rate": 1e-3, "rank": 4, "batch_size": 4, "class_images": 16},
            "embedding": {"steps": 800, "learning_rate": 0.2, "vectors": 4, "batch_size": 8},
        },
    )
