"""/forget: every job, picture, token, photo and saved default of the asker, and the result messages
the bot posted for them, deleted after an explicit confirmation (an ephemeral question with two
buttons; nothing happens if it is left unanswered)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from generation.errors import DreamcordError

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot

log = logging.getLogger(__name__)


class ForgetCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="forget", description="Delete everything dreamcord keeps about you")
    async def forget(self, interaction: discord.Interaction) -> None:
        data = await self.bot.services.privacy.summary(interaction.user.id)
        question = (
            f"This deletes **everything** dreamcord keeps about you: {data.jobs} jobs, {data.images} "
            f"pictures, {data.adapters} personal tokens, your training photos and saved defaults, and the "
            f"{len(data.messages)} result messages the bot posted for you. It cannot be undone."
        )
        await interaction.response.send_message(
            question, view=ConfirmForget(self.bot, interaction.user.id), ephemeral=True
        )


class ConfirmForget(discord.ui.View):
    def __init__(self, bot: DreamcordBot, user_id: int) -> None:
        super().__init__(timeout=300)
        self.bot = bot
        self.user_id = user_id

    @discord.ui.button(label="Delete everything", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        if interaction.user.id != self.user_id:
            await interaction.response.send_message("This question is not yours.", ephemeral=True)
            return
        self.stop()
        try:
            data = await self.bot.services.privacy.forget(self.user_id)
        except DreamcordError as error:
            await interaction.response.edit_message(content=f"Nothing was deleted: {error}", view=None)
            return
        await interaction.response.edit_message(
            content=f"Done: deleted {data.jobs} jobs, {data.images} pictures and {data.adapters} tokens.",
            view=None,
        )
        for channel_id, message_id in data.messages:
            await self._delete_message(channel_id, message_id)

    @discord.ui.button(label="Keep my data", style=discord.ButtonStyle.secondary)
    async def keep(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)

    async def _delete_message(self, channel_id: int, message_id: int) -> None:
        """Best effort: a message someone already deleted, or a channel the bot left, is skipped."""
        channel = self.bot.get_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return
        try:
            await channel.get_partial_message(message_id).delete()  # type: ignore[attr-defined]
        except discord.HTTPException as error:
            log.info("could not delete message %d in %d: %s", message_id, channel_id, error)
