"""Shared fixtures: a tiny random SD 1.x model saved to disk and loaded through the real loader."""

from __future__ import annotations

import os

# Never wait on the hub: a hub id would otherwise be retried with back-off per file (NOTES.md).
os.environ["HF_HUB_OFFLINE"] = "1"

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generation.config import ModelConfig
from generation.models import LoadedModel, load_model
from generation.specs import ImagineSpec
from generation.tiny_model import save_tiny_controlnet, save_tiny_model
from storage.db import create_engine, session_factory, sqlite_url, upgrade

# Same thread count for every test: float results depend on it (NOTES.md, Determinism).
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_config(tiny_model_dir: Path) -> ModelConfig:
    return ModelConfig(name="tiny", source=str(tiny_model_dir), scheduler="euler_a", steps=4, guidance=7.0)


@pytest.fixture(scope="session")
def tiny_model(tiny_config: ModelConfig) -> Iterator[LoadedModel]:
    yield load_model(tiny_config, device="cpu")


@pytest.fixture(scope="session")
def tiny_controlnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random canny ControlNet made from the tiny UNet, that responds to its control image."""
    return save_tiny_controlnet(tmp_path_factory.mktemp("controlnets") / "canny")


@pytest.fixture(scope="session")
def ray_instance() -> Iterator[None]:
    """One local Ray instance with the CI machine's 2 CPUs, shared by every Ray test."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, namespace="dreamcord-tests", logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def bundled_model() -> LoadedModel:
    """The committed bundled model: the one whose pictures mean something (circles, stars, colours)."""
    from generation.bundled import bundled_model_config

    return load_model(bundled_model_config(), device="cpu")


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A fresh, migrated SQLite database in WAL mode."""
    url = sqlite_url(tmp_path / "db.sqlite")
    upgrade(url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def assert_images_close(a: Image.Image, b: Image.Image, *, max_diff: int = 2, share: float = 0.999) -> None:
    """Batched vs single runs differ by ~1e-6 in floats: allow ±2/255 on all but 0.1 % of values."""
    assert a.size == b.size
    close = np.abs(pixels(a) - pixels(b)) <= max_diff
    assert close.mean() >= share, f"only {close.mean():.4%} of values within {max_diff}/255"


def red_circle_spec(**changes: object) -> ImagineSpec:
    """The bundled model's best-known picture: a large red circle on blue (seed 1)."""
    fields = {"model": "bundled", "prompt": "a large red circle in the centre on a blue background",
              "seeds": (1,), "width": 64, "height": 64, "steps": 20, "guidance": 5.0}  # fmt: skip
    return ImagineSpec(**{**fields, **changes})  # type: ignore[arg-type]


def red_pixels(image: Image.Image) -> np.ndarray:
    """Where the picture is clearly red (the bundled model's red: high R, low G and B)."""
    rgb = pixels(image)
    return (rgb[..., 0] > 150) & (rgb[..., 1] < 110) & (rgb[..., 2] < 110)
