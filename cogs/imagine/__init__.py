"""/imagine and the buttons under its grids."""

from __future__ import annotations

from cogs.imagine.imagine import ImagineCog
from cogs.imagine.views import GridButton, PictureButton, submit_region_form


async def setup(bot: object) -> None:
    from bot.discord_bot import DreamcordBot

    assert isinstance(bot, DreamcordBot)
    bot.add_dynamic_items(GridButton, PictureButton)
    bot.add_listener(submit_region_form, "on_interaction")  # Vary (Region) forms, restart-proof
    await bot.add_cog(ImagineCog(bot))
