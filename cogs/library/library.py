"""/library: a user's own tokens and those shared with them. Answers are ephemeral (a library is
personal); an import is a job like any other, shown in the channel when the worker has checked it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.attachments import read_attachment
from bot.captions import METHOD_NAMES
from bot.discord_bot import model_choices
from bot.library import LibraryEntry, LibraryError
from generation.models.adapter_files import MAX_ADAPTER_BYTES
from generation.specs import JobSpec
from storage.library import SERVER_OWNER_ID
from storage.models import Visibility

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot, Services

VISIBILITY_WORDS = {"private": "only you", "guild": "this server", "public": "everyone"}


def describe(entry: LibraryEntry) -> str:
    owner = "" if entry.mine else f" · shared by <@{entry.owner_id}>"
    if entry.owner_id == SERVER_OWNER_ID:
        owner = " · from the server's LoRA folder"
    trigger = f" · means “{entry.trigger_words}”" if entry.trigger_words else ""
    tags = f" · trained on tags: {discord.utils.escape_markdown(entry.tags)}" if entry.tags else ""
    return (
        f"**<{entry.name}>** — {METHOD_NAMES[entry.kind]} for {entry.base_model} · "
        f"visible to {VISIBILITY_WORDS[entry.visibility]}{owner}{trigger}{tags} · since {entry.created}"
    )


class LibraryCog(commands.GroupCog, group_name="library", group_description="Your personal tokens"):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot
        super().__init__()

    @property
    def services(self) -> Services:
        return self.bot.services

    async def _reply(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text[:2000], ephemeral=True)

    @app_commands.command(name="list", description="Your tokens, and those shared with you here")
    async def list_(self, interaction: discord.Interaction) -> None:
        entries = await self.services.library.entries(interaction.user.id, interaction.guild_id)
        if not entries:
            await self._reply(interaction, "Your library is empty: teach the bot a token with /train.")
            return
        await self._reply(interaction, "\n".join(describe(entry) for entry in entries))

    @app_commands.command(name="show", description="One token in detail")
    @app_commands.describe(name="The token's name, without < >")
    async def show(self, interaction: discord.Interaction, name: str) -> None:
        entry = await self.services.library.show(interaction.user.id, name.strip("<>"), interaction.guild_id)
        await self._reply(interaction, describe(entry))

    @app_commands.command(name="rename", description="Give one of your tokens a new name")
    async def rename(self, interaction: discord.Interaction, name: str, new_name: str) -> None:
        entry = await self.services.library.rename(
            interaction.user.id, name.strip("<>"), new_name.strip("<>")
        )
        await self._reply(interaction, f"Renamed: prompts now use **<{entry.name}>**.")

    @app_commands.command(name="delete", description="Delete one of your tokens for good")
    async def delete(self, interaction: discord.Interaction, name: str) -> None:
        await self.services.library.delete(interaction.user.id, name.strip("<>"))
        await self._reply(interaction, f"Deleted <{name.strip('<>')}>.")

    @app_commands.command(name="share", description="Choose who may use one of your tokens")
    @app_commands.describe(visibility="private: only you · guild: this server · public: everyone")
    async def share(
        self, interaction: discord.Interaction, name: str, visibility: Literal["private", "guild", "public"]
    ) -> None:
        entry = await self.services.library.share(
            interaction.user.id, name.strip("<>"), Visibility(visibility), interaction.guild_id
        )
        await self._reply(
            interaction, f"<{entry.name}> is now visible to {VISIBILITY_WORDS[entry.visibility]}."
        )

    @app_commands.command(
        name="import",
        description="Add a LoRA or embedding (.safetensors) to your library, from a file or a link",
    )
    @app_commands.describe(
        name="Name to use in prompts as <name>",
        file="A .safetensors LoRA (diffusers or kohya/A1111) or textual-inversion embedding",
        url="Or a https link to one (a Hugging Face file page, or a direct download link)",
        trigger="Words the LoRA was trained with (what <name> stands for in prompts)",
        model="The base model it was made for (default: the server's default)",
    )
    async def import_(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 2, 32],
        file: discord.Attachment | None = None,
        url: app_commands.Range[str, 8, 500] | None = None,
        trigger: app_commands.Range[str, 0, 200] = "",
        model: str | None = None,
    ) -> None:
        services = self.services
        if (file is None) == (url is None):
            raise LibraryError("give the file to import, or a link to it (one of them)")
        config = services.settings.model(model)
        library = services.library
        token = name.strip("<>")

        async def prepare() -> JobSpec:
            if url is not None:  # over Discord's upload limit, as most LoRAs are
                return await library.import_link_spec(token, url, model=config.name, trigger=trigger)
            assert file is not None
            data = await read_attachment(file, MAX_ADAPTER_BYTES)
            return await library.import_spec(token, file.filename, data, model=config.name, trigger=trigger)

        await services.interactive.run_prepared(interaction, prepare)

    @import_.autocomplete("model")
    async def _models(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices(self.services.settings, current)
