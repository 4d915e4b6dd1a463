"""/outpaint: zoom out, pan, make square or change the aspect, painting the new area to match."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.options import INDEX_HELP, JOB_HELP, JobNumber, PictureIndex
from cogs.pictures import chosen_picture
from generation.prompt import parse_aspect
from generation.specs import MAX_PROMPT_CHARS, MAX_ZOOM, MIN_ZOOM, JobSpec, OutpaintOperation, outpaint_spec

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


class OutpaintCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="outpaint", description="Zoom out, pan, make square or change the aspect")
    @app_commands.describe(
        operation="What to do: zoom out, pan one way, make square, or a new aspect ratio",
        image="A picture to extend (or give `job` instead)",
        job=JOB_HELP,
        index=INDEX_HELP,
        zoom="Zoom out by this much, 1.1-4 (default 2)",
        aspect="The new aspect ratio W:H for `aspect` (e.g. 16:9)",
        prompt="What to draw (default: the result's own prompt; needed for an uploaded picture)",
    )
    async def outpaint(
        self,
        interaction: discord.Interaction,
        operation: OutpaintOperation,
        image: discord.Attachment | None = None,
        job: JobNumber | None = None,
        index: PictureIndex | None = None,
        zoom: app_commands.Range[float, MIN_ZOOM, MAX_ZOOM] = 2.0,
        aspect: str | None = None,
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS] | None = None,
    ) -> None:
        bot = self.bot
        ratio = parse_aspect(aspect) if aspect else None  # before deferring: a typo is answered ephemerally

        async def prepare() -> JobSpec:
            picture = await chosen_picture(bot, interaction, image, job, index, prompt)
            image_hash = picture.image.file_hash
            return outpaint_spec(
                picture.spec,
                image_hash,
                picture.size,
                operation,
                picture.resolution,
                zoom=zoom,
                aspect=ratio,
                seed=picture.seed,
            )

        await bot.services.interactive.run_prepared(interaction, prepare, parent_job_id=job)
