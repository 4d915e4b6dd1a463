"""/outpaint on an uploaded picture or an earlier result."""

from __future__ import annotations

from cogs.outpaint.outpaint import OutpaintCog


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    await bot.add_cog(OutpaintCog(bot))
