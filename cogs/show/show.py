"""/show job:N — the result again, with working buttons (results scroll away in busy channels);
/show job:N index:I — that picture alone, its buttons, the parameters written in it (the PNG's A1111
chunk) and a link to the message of the job it was made from."""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.gate import viewer_of
from bot.images import fit_to_limit
from cogs.pictures import picture_details
from generation.errors import DreamcordError

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


class ShowCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="show", description="Bring back a result with its buttons, or one picture's parameters"
    )
    @app_commands.describe(job="The job number (shown under every result)", index="One picture of it, 1-4")
    async def show(
        self,
        interaction: discord.Interaction,
        job: app_commands.Range[int, 1],
        index: app_commands.Range[int, 1, 4] | None = None,
    ) -> None:
        record = await self.bot.services.jobs.visible_job(job, viewer_of(interaction))
        images = await self.bot.services.jobs.images_of(job)
        if index is None:
            data, content, view = await self.bot.services.results.render(
                record, images, interaction.channel_id
            )
        else:
            if index > len(images):
                raise DreamcordError(f"job {job} has {len(images)} picture(s)")
            data, content = await picture_details(self.bot, interaction, record, images[index - 1])
            make_view = self.bot.services.results.picture_view
            view = make_view(record, index - 1, images[index - 1]) if make_view else None
        file = discord.utils.MISSING
        if data is not None:
            fitted, name = await asyncio.to_thread(
                fit_to_limit, data, interaction.filesize_limit, f"dreamcord_{job}_shown.png"
            )
            file = discord.File(io.BytesIO(fitted), name)
        sent = await interaction.response.send_message(
            content[:2000], file=file, view=view or discord.utils.MISSING
        )
        await self.bot.services.privacy.record_posted(  # /forget of the asker or the owner deletes it
            user_id=interaction.user.id,
            job_id=job,
            channel_id=interaction.channel_id,
            message_id=sent.message_id if sent is not None else None,
        )
