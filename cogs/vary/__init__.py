"""/vary on an uploaded picture or an earlier result."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.vary.vary import VaryCog


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(VaryCog(bot))
