"""/admin: server administrators' commands (model, quotas, bans, audit log)."""

from __future__ import annotations

from cogs.admin.admin import AdminCog
from cogs.common import dreamcord_bot


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(AdminCog(bot))
