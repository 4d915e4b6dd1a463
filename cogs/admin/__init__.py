"""/admin: server administrators' commands (model, quotas, bans, audit log)."""

from __future__ import annotations

from cogs.admin.admin import AdminCog


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    await bot.add_cog(AdminCog(bot))
