"""Shared fixtures: a tiny random SD 1.x model saved to disk and loaded through the real loader."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

# Never wait on the hub: a hub id would otherwise be retried with back-off per file (NOTES.md).
os.environ["HF_HUB_OFFLINE"] = "1"
# Ray reads these when it is imported: token authentication as deploy/ray runs it, no usage reports.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generation.config import ModelConfig
from generation.models.loading import LoadedModel, load_model
from generation.models.tiny import save_tiny_controlnet, save_tiny_model
from generation.specs import ImagineSpec
from storage.db import create_engine, session_factory, sqlite_url, upgrade
from tests.postgres import PostgresServer, find_pg_bin

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


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    """A local Ray instance with the CI machine's 2 CPUs, for one module's Ray tests (stopped after
    it: Ray's daemons would otherwise take CPU from every later test)."""
    ray = pytest.importorskip("ray")
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # its own: another test run may use Ray too
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        namespace="dreamcord-tests",
        logging_level="WARNING",
        _temp_dir=temp_dir,
    )
    yield
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def bundled_model() -> LoadedModel:
    """The committed bundled model: the one whose pictures mean something (circles, stars, colours)."""
    from generation.bundled import bundled_model_config

    return load_model(bundled_model_config(), device="cpu")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session; skipped where none is installed, unless CI says that
    PostgreSQL is required (DREAMCORD_TEST_POSTGRES=required), so CI cannot skip it silently."""
    pytest.importorskip("psycopg")
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("DREAMCORD_TEST_POSTGRES") == "required":
            pytest.fail("PostgreSQL is required (DREAMCORD_TEST_POSTGRES) but initdb is not installed")
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    server = PostgresServer(bin_dir)
    server.start()
    yield server
    server.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked both_databases that use a database run on SQLite and on PostgreSQL."""
    if "db_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_databases"):
        both = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
        metafunc.parametrize("db_url", both, indirect=True)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database's URL: SQLite in tmp_path unless the test is parametrised with "postgresql"."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("postgres_server").new_database()  # type: ignore[no-any-return]
    return sqlite_url(tmp_path / "db.sqlite")


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A fresh, migrated database (SQLite in WAL mode, or PostgreSQL where the module asks for both)."""
    url = db_url
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


def bundled_side() -> int:
    """The committed bundled model's native picture side, read off its VAE's config (no loading)."""
    from generation.bundled import BUNDLED_MODEL_DIR

    side: int = json.loads((BUNDLED_MODEL_DIR / "vae" / "config.json").read_text())["sample_size"]
    return side


def red_circle_spec(**changes: object) -> ImagineSpec:
    """The bundled model's best-known picture: a large red circle on blue (seed 1), at its native size."""
    side = bundled_side()
    fields = {"model": "bundled", "prompt": "a large red circle in the centre on a blue background",
              "seeds": (1,), "width": side, "height": side, "steps": 20, "guidance": 5.0}  # fmt: skip
    return ImagineSpec(**{**fields, **changes})  # type: ignore[arg-type]


def red_pixels(image: Image.Image) -> np.ndarray:
    """Where the picture is clearly red (the bundled model's red: high R, low G and B)."""
    rgb = pixels(image)
    return (rgb[..., 0] > 150) & (rgb[..., 1] < 110) & (rgb[..., 2] < 110)
