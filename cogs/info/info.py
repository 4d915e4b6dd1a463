"""/info: the models this bot runs (and this server's default), its workers and queue, the server's
limits, and the asker's own numbers. Ephemeral: it is for the asker."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.gate import viewer_of
from cogs.pictures import picture_details
from generation.errors import DreamcordError

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


def package_version() -> str:
    try:
        return version("dreamcord")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


class InfoCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="info", description="What this bot runs and how busy it is, or a picture's parameters"
    )
    @app_commands.describe(
        job="A job number: show one of its pictures' parameters instead", index="Which picture, 1-4"
    )
    async def info(
        self,
        interaction: discord.Interaction,
        job: app_commands.Range[int, 1] | None = None,
        index: app_commands.Range[int, 1, 4] = 1,
    ) -> None:
        if job is not None:
            await self._picture_info(interaction, job, index)
            return
        services = self.bot.services
        guild_model = await services.admin.guild_model(interaction.guild_id)
        quotas = await services.admin.quotas(interaction.guild_id)
        load = services.jobs.load()
        mine = await services.jobs.active_jobs_of(interaction.user.id)

        models = "\n".join(
            f"• **{name}**{' (default here)' if name == guild_model else ''}"
            f"{f' — {config.description}' if config.description else ''}"
            for name, config in sorted(services.settings.models.items())
        )
        lines = [
            f"**dreamcord {package_version()}**",
            f"Models:\n{models}",
            f"Workers: {', '.join(load.workers) or 'none'} · {load.running} running, {load.waiting} waiting",
            f"Limits here: {quotas.describe()}",
            f"You: {len(mine)} queued or running · `/settings show` for your defaults, `/library list` for your tokens",
        ]
        await interaction.response.send_message("\n".join(lines)[:2000], ephemeral=True)

    async def _picture_info(self, interaction: discord.Interaction, job_id: int, index: int) -> None:
        """The parameters written in the picture and a link to its parent's message (text only)."""
        job = await self.bot.services.jobs.visible_job(job_id, viewer_of(interaction))
        images = await self.bot.services.jobs.images_of(job_id)
        if index > len(images):
            raise DreamcordError(f"job {job_id} has {len(images)} picture(s)")
        _, text = await picture_details(self.bot, interaction, job, images[index - 1])
        await interaction.response.send_message(text[:2000], ephemeral=True)
