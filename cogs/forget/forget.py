"""/forget: every job, picture, token, photo and saved default of the asker, and the result messages
the bot posted for them, deleted after an explicit confirmation (an ephemeral question with two
buttons; nothing happens if it is left unanswered)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_bot import OPEN_TO_BANNED
from cogs.common import delete_posted
from generation.errors import DreamcordError

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot

log = logging.getLogger(__name__)


class ForgetCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    # Open to banned users: erasing one's own data needs no permission to generate.
    @app_commands.command(
        name="forget",
        description="Delete everything dreamcord keeps about you",
        extras={OPEN_TO_BANNED: True},
    )
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
    """The question's two buttons. They stay live after the first answer (until the view times out), so
    a second click (a double click, or "Keep" after "Delete") is answered with a short line instead of
    Discord's "interaction failed"."""

    def __init__(self, bot: DreamcordBot, user_id: int) -> None:
        super().__init__(timeout=300)
        self.bot = bot
        self.user_id = user_id
        self.answered: str | None = None  # what the first click did

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.user_id:
            await interaction.response.send_message("This question is not yours.", ephemeral=True)
            return False
        if self.answered is not None:
            await interaction.response.send_message(f"Already answered: {self.answered}", ephemeral=True)
            return False
        return True

    @discord.ui.button(label="Delete everything", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.answered = "your data is being deleted."
        privacy = self.bot.services.privacy
        try:
            async with privacy.forgetting(self.user_id):
                await interaction.response.defer()  # deleting files and messages may take a while
                data = await privacy.forget(self.user_id)
                for channel_id, message_id in data.messages:
                    await delete_posted(self.bot, channel_id, message_id)
        except DreamcordError as error:
            self.answered = f"nothing was deleted ({error})."
            await self._edit(interaction, f"Nothing was deleted: {error}")
            return
        self.answered = "everything was deleted."
        await self._edit(
            interaction,
            f"Done: deleted {data.jobs} jobs, {data.images} pictures, {data.adapters} tokens and "
            f"{len(data.messages)} messages.",
        )

    @discord.ui.button(label="Keep my data", style=discord.ButtonStyle.secondary)
    async def keep(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.answered = "nothing was deleted."
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)

    async def _edit(self, interaction: discord.Interaction, text: str) -> None:
        if interaction.response.is_done():
            await interaction.edit_original_response(content=text, view=None)
        else:
            await interaction.response.edit_message(content=text, view=None)
