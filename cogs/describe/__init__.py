"""/describe and the numbered buttons under its suggestions."""

from __future__ import annotations

from cogs.common import dreamcord_bot
from cogs.describe.describe import DescribeCog
from cogs.describe.views import SuggestionButton, describe_view


async def setup(bot: object) -> None:
    bot = dreamcord_bot(bot)
    bot.add_dynamic_items(SuggestionButton)
    bot.services.results.kind_views["describe"] = describe_view
    await bot.add_cog(DescribeCog(bot))


async def teardown(bot: object) -> None:
    bot = dreamcord_bot(bot)
    bot.remove_dynamic_items(SuggestionButton)
    bot.services.results.kind_views.pop("describe", None)
