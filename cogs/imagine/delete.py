"""The Delete button under one's own results: after a yes in an ephemeral question, the job's pictures
and rows go, and so do the messages that showed it; jobs others made from it stay theirs."""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.gate import viewer_of
from cogs.common import Gated, bot_of, delete_posted


class DeleteButton(Gated, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"dc:del:(?P<job>\d+)"):
    def __init__(self, job_id: int, row: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Delete", style=discord.ButtonStyle.danger, custom_id=f"dc:del:{job_id}", row=row
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> DeleteButton:
        return cls(int(match["job"]), item.row or 0)

    async def run(self, interaction: discord.Interaction) -> None:
        # The one visibility rule first: a job the presser may not see is refused like a missing one.
        job = await bot_of(interaction).services.jobs.visible_job(self.job_id, viewer_of(interaction))
        if job.owner_id != interaction.user.id:
            await interaction.response.send_message(
                f"Only the person who made job {self.job_id} can delete it.", ephemeral=True
            )
            return
        await interaction.response.send_message(
            f"Delete job {self.job_id}: its pictures and the messages showing them? It cannot be undone; "
            "pictures others made from it stay theirs.",
            view=ConfirmDelete(self.job_id, interaction.user.id),
            ephemeral=True,
        )


class ConfirmDelete(discord.ui.View):
    def __init__(self, job_id: int, user_id: int) -> None:
        super().__init__(timeout=120)
        self.job_id, self.user_id = job_id, user_id

    @discord.ui.button(label="Delete", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.stop()
        bot = bot_of(interaction)
        await interaction.response.edit_message(content=f"Deleting job {self.job_id}…", view=None)
        try:
            messages = await bot.services.privacy.delete_job(self.job_id, self.user_id)
        except Exception as error:  # not finished, not theirs: the usual one line
            from bot.interactive import answer_error

            await answer_error(interaction, error, f"deleting job {self.job_id}")
            return
        for channel_id, message_id in messages:
            await delete_posted(bot, channel_id, message_id)
        await interaction.edit_original_response(
            content=f"Deleted job {self.job_id} and {len(messages)} message(s) showing it."
        )

    @discord.ui.button(label="Keep", style=discord.ButtonStyle.secondary)
    async def keep(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)
