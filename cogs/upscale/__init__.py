"""/upscale on an uploaded picture or an earlier result."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.upscale.upscale import UpscaleCog


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(UpscaleCog(bot))
