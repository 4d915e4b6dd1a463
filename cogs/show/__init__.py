"""/show: bring back a result and its buttons, or one picture with the parameters that made it."""

from __future__ import annotations

from cogs.show.show import ShowCog


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    await bot.add_cog(ShowCog(bot))
