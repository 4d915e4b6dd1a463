"""Running the real bot in-process against the fake Discord: start, stop (as a crash or a restart
would leave things) and start again. Used by the end-to-end tests and by bench/bench_load_faults.py."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.discord_bot import DreamcordBot
from bot.jobs import JobService
from bot.run import assemble
from bot.settings import Settings
from generation.pool.workers import WorkerPool
from storage.files import FileStore

# discord.py's task names for running interaction handlers: commands, buttons and forms, listeners.
HANDLER_TASKS = ("CommandTree-invoker", "discord-ui-", "discord.py: on_interaction")


async def _handlers_done(timeout: float = 20.0) -> None:
    """Wait for the bot's interaction handlers still running: a test may end as soon as the fake shows a
    message, while its handler still records it; the database must not be closed under it."""
    current = asyncio.current_task()
    handlers = [
        task
        for task in asyncio.all_tasks()
        if task is not current and not task.done() and task.get_name().startswith(HANDLER_TASKS)
    ]
    if handlers:
        await asyncio.wait(handlers, timeout=timeout)


class BotHarness:
    """One bot at a time on a shared pool and database (the fake Discord must be redirected to)."""

    def __init__(
        self,
        settings: Settings,
        pool: WorkerPool,
        sessions: async_sessionmaker[AsyncSession],
        files: FileStore,
    ) -> None:
        self.settings, self.pool, self.sessions, self.files = settings, pool, sessions, files
        self._running: list[tuple[DreamcordBot, asyncio.Task[None], JobService]] = []

    @property
    def jobs(self) -> JobService:
        """The job service of the bot running now."""
        return self._running[-1][2]

    async def start(self) -> DreamcordBot:
        bot = DreamcordBot(guild_ready_timeout=0.05)
        jobs = assemble(bot, self.settings, self.pool, self.sessions, self.files).jobs
        await bot.login("fake-token")
        task = asyncio.create_task(bot.connect(reconnect=False))
        await asyncio.wait_for(bot.wait_until_ready(), 20)
        await jobs.start()
        self._running.append((bot, task, jobs))
        return bot

    async def stop(self) -> None:
        bot, task, jobs = self._running.pop()
        await jobs.close()  # ends the listeners of every job's events…
        await _handlers_done()  # …so the interactions still being answered finish (and their DB writes)
        await bot.close()
        await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        while self._running:
            await self.stop()
