from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from generation.bundled.novel import hexagon_photos
from generation.outputs import encode_png
from generation.specs import TrainSpec


@pytest.fixture(scope="session")
def photos() -> list[Image.Image]:
    return hexagon_photos(5, size=64, seed=1)


def make_spec(photos: list[Image.Image], method: str = "lora", **fields: object) -> TrainSpec:
    values: dict[str, object] = {
        "model": "tiny",
        "token": "hexy",
        "class_noun": "shape",
        "method": method,
        "images": tuple(hashlib.sha256(encode_png(p)).hexdigest() for p in photos),
        "resolution": 64,
        "steps": 4,
        "learning_rate": 1e-2,
        "batch_size": 2,
        "class_images": 2,
        "samples": 0,
        "sample_steps": 2,
        "seed": 7,
    }
    values.update(fields)
    return TrainSpec(**values)  # type: ignore[arg-type]


@pytest.fixture
def class_cache(tmp_path: Path) -> Path:
    return tmp_path / "class-images"
