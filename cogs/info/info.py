"""/info: the models this bot runs (and this server's default), its workers and queue, the server's
limits, and the asker's own numbers. Ephemeral: it is for the asker."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.admin.admin import describe_quotas

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

    @app_commands.command(name="info", description="What this bot runs, how busy it is, and your limits")
    async def info(self, interaction: discord.Interaction) -> None:
        services = self.bot.services
        guild_model = await services.admin.guild_model(interaction.guild_id)
        quotas = await services.admin.quotas(interaction.guild_id)
        load = services.jobs.pool.load()
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
            f"Limits here: {describe_quotas(quotas)}",
            f"You: {len(mine)} queued or running · `/settings show` for your defaults, `/library list` for your tokens",
        ]
        await interaction.response.send_message("\n".join(lines)[:2000], ephemeral=True)
