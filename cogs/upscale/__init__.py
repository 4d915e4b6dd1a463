"""/upscale on an uploaded picture or an earlier result."""

from __future__ import annotations

from cogs.upscale.upscale import UpscaleCog


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    await bot.add_cog(UpscaleCog(bot))
