"""The Cancel button shown while a job waits or runs; only its owner (or an admin) may press it."""

from __future__ import annotations

import re
from typing import Any

import discord


def cancel_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


class CancelButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"dc:c:(?P<job>\d+)"):
    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(label="Cancel", style=discord.ButtonStyle.danger, custom_id=f"dc:c:{job_id}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> CancelButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        from bot.discord_bot import DreamcordBot
        from bot.interactive import is_admin, reply_error
        from generation.errors import DreamcordError

        bot = interaction.client
        assert isinstance(bot, DreamcordBot)
        try:
            await bot.services.jobs.cancel(
                self.job_id, requester_id=interaction.user.id, is_admin=is_admin(interaction)
            )
        except DreamcordError as error:
            await reply_error(interaction, str(error))
            return
        await interaction.response.send_message(f"Cancelling job {self.job_id}.", ephemeral=True)
