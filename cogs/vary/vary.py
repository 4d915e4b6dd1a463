"""/vary: four variations of a picture, subtle or strong, or of one region (a box or a mask image)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.attachments import read_attachment
from cogs.actions import vary
from cogs.options import INDEX_HELP, JOB_HELP, JobNumber, PictureIndex
from cogs.pictures import chosen_picture
from generation.pictures.uploads import open_user_image
from generation.specs import (
    MAX_PROMPT_CHARS,
    REGION_STRENGTH,
    STRONG_STRENGTH,
    SUBTLE_STRENGTH,
    JobSpec,
    parse_box,
)

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot

STRENGTHS = {"subtle": SUBTLE_STRENGTH, "strong": STRONG_STRENGTH}


class VaryCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="vary", description="Four variations of a picture, or of one region of it")
    @app_commands.describe(
        image="A picture to vary (or give `job` instead)",
        job=JOB_HELP,
        index=INDEX_HELP,
        strength="subtle keeps the composition, strong keeps colours and layout (default strong)",
        region="Repaint only this box: left, top, right, bottom in % (e.g. 25, 25, 75, 75)",
        mask="Repaint only the white (or transparent) part of this mask image",
        prompt="What to draw (default: the result's own prompt; needed for an uploaded picture)",
    )
    async def vary(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment | None = None,
        job: JobNumber | None = None,
        index: PictureIndex | None = None,
        strength: Literal["subtle", "strong"] = "strong",
        region: app_commands.Range[str, 1, 40] | None = None,
        mask: discord.Attachment | None = None,
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS] | None = None,
    ) -> None:
        bot = self.bot
        box = parse_box(region) if region else None  # before deferring: a typo gets an ephemeral reply

        async def prepare() -> JobSpec:
            picture = await chosen_picture(bot, interaction, image, job, index, prompt)
            mask_hash = None
            if mask is not None:
                data = await read_attachment(mask)
                await asyncio.to_thread(open_user_image, data, mask.filename)  # not on the loop
                (mask_hash,) = await bot.services.jobs.store_files([data])
            chosen = REGION_STRENGTH if box or mask_hash else STRENGTHS[strength]
            return vary(picture, chosen, box=box, mask=mask_hash)

        await bot.services.interactive.run_prepared(interaction, prepare, parent_job_id=job)
