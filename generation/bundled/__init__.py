"""dreamcord's own small text-to-image model, shipped as package data in diffusers' folder layout.

It is the default model when none is configured, and loads through the same code as any checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from generation.config import ModelConfig

BUNDLED_MODEL_NAME = "bundled"
BUNDLED_MODEL_DIR = Path(__file__).parent / "model"


def bundled_model_config() -> ModelConfig:
    return ModelConfig(
        name=BUNDLED_MODEL_NAME,
        source=str(BUNDLED_MODEL_DIR),
        scheduler="euler_a",
        steps=20,
        guidance=5.0,
        description="dreamcord's bundled shapes-and-colours model (works offline)",
    )
