"""/info: what this bot runs and how busy it is."""

from __future__ import annotations

from cogs.info.info import InfoCog


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    await bot.add_cog(InfoCog(bot))
