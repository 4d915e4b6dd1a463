"""/prefer: Midjourney's suffix and named option sets for your prompts."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.prefer.prefer import PreferCog


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(PreferCog(bot))
