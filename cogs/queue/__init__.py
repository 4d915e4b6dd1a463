"""/queue and the Cancel button on running jobs."""

from __future__ import annotations

from cogs.queue.queue import QueueCog
from cogs.queue.views import CancelButton


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    bot.add_dynamic_items(CancelButton)
    await bot.add_cog(QueueCog(bot))
