"""/queue: your jobs that are waiting or running, and cancelling one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.gate import viewer_of

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


class QueueCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="queue", description="Your jobs that are waiting or running")
    @app_commands.describe(cancel="The number of a job of yours to cancel")
    async def queue(self, interaction: discord.Interaction, cancel: int | None = None) -> None:
        jobs = self.bot.services.jobs
        if cancel is not None:
            await jobs.cancel(cancel, viewer_of(interaction))
            await interaction.response.send_message(f"Cancelling job {cancel}.", ephemeral=True)
            return
        mine = await jobs.active_jobs_of(interaction.user.id)
        if not mine:
            await interaction.response.send_message("You have no jobs waiting or running.", ephemeral=True)
            return
        lines = []
        for job in mine:
            position = jobs.queue_position(job.id)
            where = f"waiting, position {position}" if position else job.state.value
            lines.append(f"• job {job.id} ({job.kind}): {where}")
        await interaction.response.send_message("\n".join(lines)[:2000], ephemeral=True)
