"""/vary on an uploaded picture or an earlier result."""

from __future__ import annotations

from cogs.vary.vary import VaryCog


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    await bot.add_cog(VaryCog(bot))
