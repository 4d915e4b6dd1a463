"""/library: list, show, rename, delete, share and import personal tokens."""

from __future__ import annotations

from cogs.library.library import LibraryCog


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    await bot.add_cog(LibraryCog(bot))
