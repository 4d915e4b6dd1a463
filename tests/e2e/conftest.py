"""End-to-end fixtures: the real bot (real cogs, job service, pool on the tiny model) against the fake Discord."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio

from bot.discord_bot import DreamcordBot
from bot.jobs import JobService
from bot.run import assemble
from bot.settings import Settings
from generation.config import ModelConfig
from generation.pool import PoolConfig, WorkerPool
from generation.worker import WorkerSettings
from storage.db import create_engine, session_factory, upgrade
from storage.files import FileStore
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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def e2e_pool(tiny_config: ModelConfig) -> AsyncIterator[WorkerPool]:
    worker = WorkerSettings(models={"tiny": tiny_config}, device="cpu", threads=2, log_level=logging.WARNING)
    pool = WorkerPool(PoolConfig(worker=worker, interactive_devices=("cpu",)))
    await pool.start()
    yield pool
    await pool.close()


@pytest_asyncio.fixture(loop_scope="module")
async def stack(e2e_pool: WorkerPool, tiny_config: ModelConfig, tmp_path: Path) -> AsyncIterator[Stack]:
    fake = FakeDiscord()
    await fake.start()
    settings = Settings(models={"tiny": tiny_config}, default_model="tiny", data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    upgrade(settings.db_url)
    engine = create_engine(settings.db_url)
    files = FileStore(settings.files_dir)
    running: list[tuple[DreamcordBot, asyncio.Task[None], JobService]] = []

    async def start_bot() -> DreamcordBot:
        bot = DreamcordBot(guild_ready_timeout=0.05)
        jobs = assemble(bot, settings, e2e_pool, session_factory(engine), files).jobs
        await bot.login("fake-token")
        task = asyncio.create_task(bot.connect(reconnect=False))
        await asyncio.wait_for(bot.wait_until_ready(), 20)
        await jobs.start()
        running.append((bot, task, jobs))
        return bot

    async def stop_bot() -> None:
        bot, task, jobs = running.pop()
        await jobs.close()
        await bot.close()
        await asyncio.gather(task, return_exceptions=True)

    async def restart_bot() -> DreamcordBot:
        await stop_bot()
        return await start_bot()

    with fake.redirect_discord_py():
        bot = await start_bot()
        try:
            yield Stack(fake=fake, bot=bot, jobs=running[-1][2], settings=settings, restart_bot=restart_bot)
        finally:
            while running:
                await stop_bot()
            await fake.stop()
            await engine.dispose()
