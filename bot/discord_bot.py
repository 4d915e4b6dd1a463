"""The Discord bot: a `commands.Bot` that loads the cogs, registers the persistent buttons and turns
user-facing errors into ephemeral replies."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import discord
from discord import app_commands
from discord.ext import commands

from bot.admin import AdminService, Banned
from bot.delivery import DiscordResultSink
from bot.interactive import InteractiveJobs, reply_error
from bot.jobs import JobService
from bot.library import LibraryService
from bot.privacy import PrivacyService
from bot.settings import Settings
from generation.errors import DreamcordError
from storage.files import FileStore

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.imagine",
    "cogs.vary",
    "cogs.upscale",
    "cogs.outpaint",
    "cogs.queue",
    "cogs.train",
    "cogs.library",
    "cogs.settings",
    "cogs.info",
    "cogs.admin",
    "cogs.forget",
    "cogs.show",
)
INTERNAL_ERROR = "Something went wrong on our side; it has been logged. Please try again."


@dataclass
class Services:
    """What the cogs use; they never touch pipelines or database sessions directly."""

    settings: Settings
    jobs: JobService
    files: FileStore
    sink: DiscordResultSink
    interactive: InteractiveJobs
    library: LibraryService
    admin: AdminService
    privacy: PrivacyService


def model_choices(settings: Settings, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete for a `model` option: the configured models whose name contains what was typed."""
    names = sorted(name for name in settings.models if current.lower() in name.lower())
    return [app_commands.Choice(name=name, value=name) for name in names][:25]


class DreamcordTree(app_commands.CommandTree["DreamcordBot"]):
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Banned users get one ephemeral line for any command (jobs are refused again at submit)."""
        try:
            await self.client.services.admin.check_not_banned(interaction.user.id, interaction.guild_id)
        except Banned as error:
            if interaction.type == discord.InteractionType.application_command:
                await reply_error(interaction, str(error))
            return False
        return True

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, DreamcordError | app_commands.CheckFailure | app_commands.TransformerError):
            await reply_error(interaction, str(cause))
        else:
            log.exception(
                "command %s failed", interaction.command and interaction.command.name, exc_info=cause
            )
            await reply_error(interaction, INTERNAL_ERROR)


class DreamcordBot(commands.Bot):
    services: Services

    def __init__(self, *, sync_commands: bool = True, **options: object) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            tree_cls=DreamcordTree,
            **options,  # type: ignore[arg-type]
        )
        self.sync_commands = sync_commands

    def attach(self, services: Services) -> None:
        self.services = services

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.sync_commands:
            synced = await self.tree.sync()
            log.info("synced %d slash commands", len(synced))
