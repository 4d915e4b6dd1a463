"""/library: list, show, rename, delete, share and import personal tokens."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.library.library import LibraryCog


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(LibraryCog(bot))
