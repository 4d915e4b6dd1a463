"""`dreamcord run`: settings -> database (upgraded) -> worker pool -> job service -> the bot."""

from __future__ import annotations

import asyncio
import gc
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import offload
from bot.admin import AdminService
from bot.captions import result_caption
from bot.delivery import DiscordResults
from bot.discord_bot import DreamcordBot, Services
from bot.health import HealthServer
from bot.interactive import InteractiveJobs
from bot.job_messages import DiscordJobMessages
from bot.jobs import JobService
from bot.library import LibraryService
from bot.privacy import PrivacyService
from bot.server_loras import FolderSync, sync_server_folders
from bot.settings import Settings, SettingsError
from bot.shutdown import GracefulStop
from bot.startup import announce, login
from generation.pool.worker import WorkerSettings
from generation.pool.workers import PoolConfig, WorkerPool
from storage.db import create_engine, session_factory, upgrade_async
from storage.files import FileStore

log = logging.getLogger(__name__)


def pool_config(settings: Settings) -> PoolConfig:
    return PoolConfig(
        worker=WorkerSettings(
            models=settings.models,
            data_dir=str(settings.data_dir),
            device=settings.device,
            dtype=settings.dtype,
            log_level=logging.getLevelNamesMapping()[settings.log_level.upper()],
        ),
        interactive_devices=settings.worker_devices,
        training_devices=settings.training_worker_devices,
        max_queued_per_user=settings.max_queued_per_user,
        backend="ray" if settings.pool == "ray" else "local",
        ray=settings.ray,
    )


def assemble(
    bot: DreamcordBot,
    settings: Settings,
    pool: WorkerPool,
    sessions: async_sessionmaker[AsyncSession],
    files: FileStore,
) -> Services:
    """Join the pieces: the job service shows jobs through the bot, the cogs reach both through
    Services (and register their buttons on `messages` and `results` as they load)."""
    results = DiscordResults(bot, files, result_caption)
    messages = DiscordJobMessages(results)
    privacy = PrivacyService(sessions, files, settings.data_dir)
    jobs = JobService(sessions, pool, files, messages, privacy)
    services = Services(
        settings=settings,
        jobs=jobs,
        files=files,
        results=results,
        messages=messages,
        interactive=InteractiveJobs(jobs, messages),
        library=LibraryService(sessions, files, jobs),
        admin=AdminService(sessions, settings),
        privacy=privacy,
    )
    bot.attach(services)
    return services


def freeze_startup_objects() -> None:
    """Move everything imported and built at start-up out of the garbage collector's sight: a full
    collection over the ~500,000 objects of the libraries stalls the event loop ~0.3 s each time
    (bench/bench_load_faults.py); afterwards it only walks what the bot makes while it runs."""
    gc.collect()
    gc.freeze()


async def run_bot(settings: Settings) -> None:
    """Run until the bot is closed (by a stop signal: see bot.shutdown). The token is checked first,
    then the database is upgraded, the workers start and unfinished jobs resume."""
    if not settings.discord_token:
        raise SettingsError(
            "DISCORD_TOKEN is not set: put the bot token in the environment (never in a file)"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.db_url)
    files = FileStore(settings.files_dir)
    pool = WorkerPool(pool_config(settings))
    bot = DreamcordBot()
    sessions = session_factory(engine)
    jobs = assemble(bot, settings, pool, sessions, files).jobs
    stop = GracefulStop(jobs, settings.shutdown_grace_s, bot.close)
    folders: asyncio.Task[FolderSync] | None = None
    health = None
    if settings.health_port is not None:
        health = HealthServer(bot, pool, sessions, settings.health_host, settings.health_port)
    try:
        async with bot:
            # Before the workers spend minutes loading models: a wrong token is told at once.
            await login(bot, settings.discord_token)
            announce(bot, settings.default_model)
            await upgrade_async(settings.db_url)
            await pool.start()
            if health is not None:
                await health.start()
            freeze_startup_objects()
            stop.install()
            resumed = await jobs.start()
            log.info("resumed %d unfinished jobs", len(resumed))
            # Copying a folder of large files takes a while: the bot answers meanwhile.
            folders = asyncio.create_task(sync_server_folders(sessions, files, settings.models))
            await bot.connect()
    finally:
        stop.uninstall()
        if health is not None:
            await health.stop()
        if folders is not None:
            folders.cancel()
        await jobs.close()
        await pool.close()
        await engine.dispose()
        offload.shutdown()
        log.info("stopped")


def main(settings: Settings) -> int:
    """`dreamcord run` (logging is configured by the command line, once)."""
    try:
        asyncio.run(run_bot(settings))
    except KeyboardInterrupt:  # before the stop signals are handled (still starting)
        log.info("stopped while starting")
    return 0
