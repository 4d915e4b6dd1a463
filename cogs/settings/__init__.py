"""/settings: your personal defaults for /imagine."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.settings.settings import SettingsCog


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(SettingsCog(bot))
