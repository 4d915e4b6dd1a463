"""The Discord bot: a `commands.Bot` that loads the cogs, registers the persistent buttons and turns
user-facing errors into ephemeral replies."""

from __future__ import annotations

import importlib.util
import logging
import pkgutil
from dataclasses import dataclass

import discord
from discord import app_commands
from discord.ext import commands

from bot.admin import AdminService
from bot.delivery import DiscordResults
from bot.gate import admit
from bot.interactive import InteractiveJobs, answer_error
from bot.job_messages import DiscordJobMessages
from bot.jobs import JobService
from bot.library import LibraryService
from bot.privacy import PrivacyService
from bot.settings import Settings
from storage.files import FileStore

log = logging.getLogger(__name__)
# The bot never joins a voice channel: no warning at each start that voice libraries are missing.
discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False


def cog_extensions() -> tuple[str, ...]:
    """Every package under cogs/ is an extension: adding a command family is adding its folder. Found
    without importing `cogs` (the bot never imports a cog; each registers itself when loaded)."""
    spec = importlib.util.find_spec("cogs")
    folders = spec.submodule_search_locations if spec and spec.submodule_search_locations else []
    return tuple(sorted(f"cogs.{module.name}" for module in pkgutil.iter_modules(folders) if module.ispkg))


EXTENSIONS = cog_extensions()


@dataclass
class Services:
    """What the cogs use; they never touch pipelines or database sessions directly."""

    settings: Settings
    jobs: JobService
    files: FileStore
    results: DiscordResults
    messages: DiscordJobMessages
    interactive: InteractiveJobs
    library: LibraryService
    admin: AdminService
    privacy: PrivacyService


def model_choices(settings: Settings, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete for a `model` option: the configured models whose name contains what was typed."""
    names = sorted(name for name in settings.models if current.lower() in name.lower())
    return [app_commands.Choice(name=name, value=name) for name in names][:25]


OPEN_TO_BANNED = "open_to_banned"  # a command's `extras` key: the ban gate lets it through (/forget)


class DreamcordTree(app_commands.CommandTree["DreamcordBot"]):
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The gate (bot.gate) for every slash command but those marked open to banned users."""
        command = interaction.command
        if command is not None and command.extras.get(OPEN_TO_BANNED):
            return True
        return await admit(interaction, self.client.services.admin)

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        name = interaction.command.name if interaction.command else "?"
        await answer_error(interaction, cause, f"command /{name}")


class DreamcordBot(commands.Bot):
    services: Services

    def __init__(self, *, sync_commands: bool = True, **options: object) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            # Nobody is pinged unless a message asks for it (a prompt may contain @everyone).
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=DreamcordTree,
            **options,  # type: ignore[arg-type]
        )
        self.sync_commands = sync_commands

    def attach(self, services: Services) -> None:
        self.services = services

    async def close(self) -> None:
        """Stop showing progress before the HTTP session closes (a pending progress edit would
        otherwise fail on a closed session); the jobs themselves resume on the next start."""
        if hasattr(self, "services"):
            self.services.jobs.stop_showing()
        await super().close()

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.sync_commands:
            synced = await self.tree.sync()
            log.info("synced %d slash commands", len(synced))
