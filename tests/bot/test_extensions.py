"""Every cog is an extension that stands alone: it loads without any other, registers its own
commands, buttons and hooks, and leaves nothing behind when unloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.discord_bot import EXTENSIONS, DreamcordBot, Services
from bot.run import assemble
from bot.settings import Settings
from generation.config import ModelConfig
from generation.pool.worker import WorkerSettings
from generation.pool.workers import PoolConfig, WorkerPool
from storage.files import FileStore


def _hooks(services: Services) -> tuple[object, ...]:
    return (services.results.result_view, services.results.picture_view, services.messages.controls)


@pytest.fixture
def bot(sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path) -> DreamcordBot:
    settings = Settings(models={"tiny": tiny_config}, default_model="tiny", data_dir=tmp_path)
    pool = WorkerPool(PoolConfig(worker=WorkerSettings(models={"tiny": tiny_config})))  # never started
    bot = DreamcordBot(sync_commands=False)
    assemble(bot, settings, pool, sessions, FileStore(tmp_path / "files"))
    return bot


@pytest.mark.parametrize("extension", EXTENSIONS)
async def test_each_extension_loads_and_unloads_alone(bot: DreamcordBot, extension: str) -> None:
    before = (
        len(bot.tree.get_commands()),
        len(bot._connection._view_store._dynamic_items),
        _hooks(bot.services),
    )
    listeners = {name: list(funcs) for name, funcs in bot.extra_events.items()}

    await bot.load_extension(extension)
    assert bot.cogs, f"{extension} added no cog"
    assert len(bot.tree.get_commands()) > before[0], f"{extension} added no slash command"

    await bot.unload_extension(extension)
    assert not bot.cogs
    after = (
        len(bot.tree.get_commands()),
        len(bot._connection._view_store._dynamic_items),
        _hooks(bot.services),
    )
    assert after == before, f"{extension} left something registered"
    assert {name: funcs for name, funcs in bot.extra_events.items() if funcs} == {
        name: funcs for name, funcs in listeners.items() if funcs
    }


async def test_all_extensions_load_together_and_register_the_result_buttons(bot: DreamcordBot) -> None:
    for extension in EXTENSIONS:
        await bot.load_extension(extension)
    assert all(hook is not None for hook in _hooks(bot.services))
    for extension in EXTENSIONS:
        await bot.unload_extension(extension)
    assert _hooks(bot.services) == (None, None, None)
