"""/queue and the Cancel button on running jobs."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.queue.queue import QueueCog
from cogs.queue.views import CancelButton, cancel_view


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    bot.add_dynamic_items(CancelButton)
    bot.services.messages.controls = cancel_view  # under every job while it waits or runs
    await bot.add_cog(QueueCog(bot))


async def teardown(bot: object) -> None:
    bot = dreamcord_bot(bot)
    bot.remove_dynamic_items(CancelButton)
    bot.services.messages.controls = None
