"""/show: bring back a result and its buttons, or one picture with the parameters that made it."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.show.show import ShowCog


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(ShowCog(bot))
