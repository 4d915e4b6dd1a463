"""/train: a personal token from a handful of photos."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.train.train import TrainCog


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(TrainCog(bot))
