"""/help: one screen per topic, for whoever asks (ephemeral)."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.help.help import HelpCog


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(HelpCog(bot))
