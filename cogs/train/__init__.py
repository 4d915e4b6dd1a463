"""/train: a personal token from a handful of photos."""

from __future__ import annotations

from cogs.train.train import TrainCog


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    await bot.add_cog(TrainCog(bot))
