"""/forget: delete everything dreamcord keeps about the user, after they confirm."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.forget.forget import ForgetCog


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(ForgetCog(bot))
