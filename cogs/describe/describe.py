"""/describe: four prompts for a picture (an upload or an earlier result), from the model's describer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.delivery import channel_allows_nsfw
from bot.discord_bot import model_choices
from bot.gate import viewer_of
from bot.images import HIDDEN_NOTE
from cogs.many import stored_pictures
from cogs.options import INDEX_HELP, JOB_HELP, JobNumber, PictureIndex
from cogs.pictures import stored_picture
from generation.config import ModelConfig
from generation.errors import DreamcordError
from generation.specs import DescribeSpec, JobSpec, build_spec

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


class DescribeCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="describe", description="Four prompts for a picture, each one press from /imagine"
    )
    @app_commands.describe(
        image="A picture to describe (or give `job` instead)",
        job=JOB_HELP,
        index=INDEX_HELP,
        model="The model the prompts are for (default: the result's own, or your default model)",
    )
    async def describe(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment | None = None,
        job: JobNumber | None = None,
        index: PictureIndex | None = None,
        model: str | None = None,
    ) -> None:
        bot = self.bot
        if (image is None) == (job is None):
            raise DreamcordError("give either an `image` to upload or the `job` number of an earlier result")
        if image is not None:  # checked before deferring: a wrong model is an ephemeral line
            config = await self._model(interaction, model)

        async def prepare() -> JobSpec:
            if image is not None:
                (digest,) = await stored_pictures(bot.services, [image])  # checked, then stored
                return build_spec(DescribeSpec, model=config.name, source=digest)
            assert job is not None
            picture = await stored_picture(bot, job, (index or 1) - 1, viewer_of(interaction))
            if picture.image.nsfw and not channel_allows_nsfw(bot, interaction.channel_id):
                raise DreamcordError(f"That picture was {HIDDEN_NOTE}.")
            chosen = await self._model(interaction, model or picture.spec.model)
            return build_spec(DescribeSpec, model=chosen.name, source=picture.image.file_hash)

        await bot.services.interactive.run_prepared(interaction, prepare, parent_job_id=job)

    async def _model(self, interaction: discord.Interaction, name: str | None) -> ModelConfig:
        """The named model, else the user's default (/settings), else the server's; it must have a describer."""
        settings = self.bot.services.settings
        if name is None:
            defaults = await self.bot.services.admin.prompt_defaults(
                interaction.user.id, interaction.guild_id
            )
            name = defaults.model if defaults is not None else None
        config = settings.model(name)
        if config.describer is None:
            described = sorted(n for n, c in settings.models.items() if c.describer is not None)
            hint = f"; these can: {', '.join(described)}" if described else ""
            raise DreamcordError(
                f"model {config.name!r} has no describer configured, so it cannot /describe{hint}"
            )
        return config

    @describe.autocomplete("model")
    async def _models(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices(self.bot.services.settings, current)
