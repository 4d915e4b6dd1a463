"""/settings: your personal defaults for /imagine."""

from __future__ import annotations

from cogs.settings.settings import SettingsCog


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    await bot.add_cog(SettingsCog(bot))
