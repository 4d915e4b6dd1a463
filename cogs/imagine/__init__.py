"""/imagine and the buttons under its grids."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.imagine.imagine import ImagineCog
from cogs.imagine.views import GridButton, PictureButton, picture_view, result_view, submit_region_form


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    bot.add_dynamic_items(GridButton, PictureButton)
    bot.add_listener(submit_region_form, "on_interaction")  # Vary (Region) forms, restart-proof
    bot.services.results.result_view = result_view  # the U/V/🔄 and picture buttons under results
    bot.services.results.picture_view = picture_view
    await bot.add_cog(ImagineCog(bot))


async def teardown(bot: object) -> None:
    bot = dreamcord_bot(bot)
    bot.remove_dynamic_items(GridButton, PictureButton)
    bot.remove_listener(submit_region_form, "on_interaction")
    bot.services.results.result_view = None
    bot.services.results.picture_view = None
