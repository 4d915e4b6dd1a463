"""/upscale: a larger, sharper picture (2x or 4x, subtle or creative)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.options import INDEX_HELP, JOB_HELP, JobNumber, PictureIndex
from cogs.pictures import chosen_picture
from generation.specs import MAX_PROMPT_CHARS, UPSCALE_PROMPT, JobSpec, upscale_spec

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


class UpscaleCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="upscale", description="A larger, sharper version of a picture")
    @app_commands.describe(
        image="A picture to upscale (or give `job` instead)",
        job=JOB_HELP,
        index=INDEX_HELP,
        factor="2x or 4x the size (default 2)",
        mode="subtle adds detail and keeps everything; creative redraws more (default subtle)",
        prompt="What the picture shows (optional; flags such as --model NAME work here)",
    )
    async def upscale(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment | None = None,
        job: JobNumber | None = None,
        index: PictureIndex | None = None,
        factor: Literal[2, 4] = 2,
        mode: Literal["subtle", "creative"] = "subtle",
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS] | None = None,
    ) -> None:
        bot = self.bot

        async def prepare() -> JobSpec:
            described = prompt or (UPSCALE_PROMPT if image is not None else None)
            picture = await chosen_picture(bot, interaction, image, job, index, described)
            image_hash = picture.image.file_hash
            return upscale_spec(
                picture.spec,
                image_hash,
                picture.size,
                factor,
                mode,
                picture.resolution,
                seed=picture.seed,
                setup=picture.upscale,
            )

        await bot.services.interactive.run_prepared(interaction, prepare, parent_job_id=job)
