"""The Cancel button shown while a job waits or runs; only its owner (or an admin) may press it."""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.gate import viewer_of
from cogs.common import Gated, bot_of


def cancel_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


class CancelButton(Gated, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"dc:c:(?P<job>\d+)"):
    open_to_banned = True  # stopping one's own job needs no permission to generate

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(label="Cancel", style=discord.ButtonStyle.danger, custom_id=f"dc:c:{job_id}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> CancelButton:
        return cls(int(match["job"]))

    async def run(self, interaction: discord.Interaction) -> None:
        await bot_of(interaction).services.jobs.cancel(self.job_id, viewer_of(interaction))
        await interaction.response.send_message(f"Cancelling job {self.job_id}.", ephemeral=True)
