"""/blend: two to five pictures mixed into a grid of four."""

from __future__ import annotations

from cogs.blend.blend import BlendCog
from cogs.common import dreamcord_bot


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    await bot.add_cog(BlendCog(bot))
