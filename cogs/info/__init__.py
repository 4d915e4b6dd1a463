"""/info: what this bot runs and how busy it is."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.info.info import InfoCog


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(InfoCog(bot))
