"""/imagine and the buttons under its grids."""

from __future__ import annotations

import functools

from cogs.common import dreamcord_bot
from cogs.imagine.delete import DeleteButton
from cogs.imagine.imagine import ImagineCog
from cogs.imagine.remix import submit_remix_form
from cogs.imagine.views import GridButton, PictureButton, picture_view, result_view, submit_region_form
from generation.models.checkpoint_facts import known_family
from generation.models.family_facts import FamilyFacts
from generation.specs import spec_from_json


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    bot.add_dynamic_items(GridButton, PictureButton, DeleteButton)
    bot.add_listener(submit_region_form, "on_interaction")  # Vary (Region) forms, restart-proof
    bot.add_listener(submit_remix_form, "on_interaction")  # remix forms, likewise
    families = bot.services.settings.models

    def family_of(model: str) -> FamilyFacts | None:
        return known_family(families[model]) if model in families else None

    # the U/V/🔄 and picture buttons under results, without those the model's family cannot do
    bot.services.results.result_view = functools.partial(result_view, family_of=family_of)
    bot.services.results.picture_view = lambda job, index, image: picture_view(
        job.id, index, image, family_of(spec_from_json(job.spec_json).model)
    )
    await bot.add_cog(ImagineCog(bot))


async def teardown(bot: object) -> None:
    bot = dreamcord_bot(bot)
    bot.remove_dynamic_items(GridButton, PictureButton, DeleteButton)
    bot.remove_listener(submit_region_form, "on_interaction")
    bot.remove_listener(submit_remix_form, "on_interaction")
    bot.services.results.result_view = None
    bot.services.results.picture_view = None
