"""End-to-end fixtures: the real bot (real cogs, job service, pool on the tiny model) against the fake Discord."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.discord_bot import DreamcordBot
from bot.jobs import JobService
from bot.settings import Settings
from generation.config import ModelConfig, TurboConfig
from generation.pool.worker import WorkerSettings
from generation.pool.workers import PoolConfig, WorkerPool
from storage.db import create_engine, session_factory, upgrade
from storage.files import FileStore
from tests.e2e.harness import BotHarness
from tests.e2e.processes import kill_leftovers
from tests.fakediscord.server import FakeDiscord


@dataclass
class Stack:
    fake: FakeDiscord
    bot: DreamcordBot
    jobs: JobService
    settings: Settings
    restart_bot: Callable[[], Coroutine[Any, Any, DreamcordBot]]

    async def job_message_id(self, job_id: int, timeout: float = 10.0) -> int | None:
        """The message a job recorded as posted (it is recorded just after the post returns)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            job = await self.jobs.get_job(job_id)
            if (job and job.message_id) or asyncio.get_running_loop().time() > deadline:
                return job.message_id if job else None
            await asyncio.sleep(0.05)


QUICK_TRAINING = {"steps": 3, "learning_rate": 1e-2, "batch_size": 2, "class_images": 2}


@pytest.fixture(scope="module")
def e2e_config(tiny_config: ModelConfig, tiny_controlnet_dir: Path) -> ModelConfig:
    return replace(
        tiny_config,
        training={"lora": QUICK_TRAINING, "embedding": QUICK_TRAINING},
        controlnets={"canny": str(tiny_controlnet_dir)},
        turbo=TurboConfig(steps=2, scheduler="dpmpp_2m"),
    )


@pytest.fixture(scope="module")
def e2e_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the module's workers and bots: the file store is content-addressed, so tests can share it."""
    return tmp_path_factory.mktemp("e2e-data")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def e2e_pool(
    request: pytest.FixtureRequest, e2e_config: ModelConfig, e2e_data_dir: Path
) -> AsyncIterator[WorkerPool]:
    """One pool per test module; a module that sets E2E_TRAINING_WORKER = True also gets a training
    worker, and one that sets E2E_POOL_BACKEND = "ray" runs its workers as Ray actors."""
    worker = WorkerSettings(
        models={"tiny": e2e_config},
        data_dir=str(e2e_data_dir),
        device="cpu",
        threads=2,
        log_level=logging.WARNING,
        # Off unless a module asks: a preview is an attachment too, and tests wait for the result's.
        preview_interval_s=getattr(request.module, "E2E_PREVIEW_INTERVAL_S", 0.0),
    )
    training = ("cpu",) if getattr(request.module, "E2E_TRAINING_WORKER", False) else ()
    backend = getattr(request.module, "E2E_POOL_BACKEND", "local")
    if backend == "ray":
        request.getfixturevalue("ray_instance")
    pool = WorkerPool(
        PoolConfig(worker=worker, interactive_devices=("cpu",), training_devices=training, backend=backend)
    )
    await pool.start()
    yield pool
    await pool.close()


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """A `dreamcord` process a test started (tests/e2e/processes.py) never outlives it."""
    yield
    kill_leftovers()


@pytest_asyncio.fixture(loop_scope="module")
async def bare_fake() -> AsyncIterator[FakeDiscord]:
    """The fake Discord alone, for a bot that runs as a process of its own (`dreamcord run`)."""
    fake = FakeDiscord()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def stack(
    e2e_pool: WorkerPool, e2e_config: ModelConfig, e2e_data_dir: Path, tmp_path: Path
) -> AsyncIterator[Stack]:
    fake = FakeDiscord()
    await fake.start()
    settings = Settings(
        models={"tiny": e2e_config},
        default_model="tiny",
        data_dir=e2e_data_dir,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'dreamcord.db'}",  # a fresh database per test
    )
    upgrade(settings.db_url)
    engine = create_engine(settings.db_url)
    bots = BotHarness(settings, e2e_pool, session_factory(engine), FileStore(settings.files_dir))

    async def restart_bot() -> DreamcordBot:
        await bots.stop()
        return await bots.start()

    with fake.redirect_discord_py():
        bot = await bots.start()
        try:
            yield Stack(fake=fake, bot=bot, jobs=bots.jobs, settings=settings, restart_bot=restart_bot)
        finally:
            await bots.close()
            await fake.stop()
            await engine.dispose()
    # In every scenario: nobody pinged but a job's owner, on the channel post of their result.
    assert [ping for ping in fake.pings if not (ping[1].startswith("user:") and ping[2])] == []
