"""/forget: delete everything dreamcord keeps about the user, after they confirm."""

from __future__ import annotations

from cogs.forget.forget import ForgetCog


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    await bot.add_cog(ForgetCog(bot))
