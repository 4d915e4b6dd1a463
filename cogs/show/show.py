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

from bot.captions import code_block
from bot.delivery import channel_allows_nsfw
from bot.gate import viewer_of
from bot.images import fit_to_limit, hidden_png
from bot.jobs import StoredImage
from cogs.imagine.views import picture_view
from generation.errors import DreamcordError
from generation.provenance import read_chunks
from storage.models import Job

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


def message_link(job: Job) -> str | None:
    if job.guild_id is None or job.channel_id is None or job.message_id is None:
        return None
    return f"https://discord.com/channels/{job.guild_id}/{job.channel_id}/{job.message_id}"


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
            data, content, view = await self.bot.services.sink.render(record, images, interaction.channel_id)
        else:
            if index > len(images):
                raise DreamcordError(f"job {job} has {len(images)} picture(s)")
            data, content = await picture_details(self.bot, interaction, record, images[index - 1])
            view = picture_view(job, index - 1, images[index - 1])
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


async def picture_details(
    bot: DreamcordBot, interaction: discord.Interaction, job: Job, image: StoredImage
) -> tuple[bytes, str]:
    """The picture's bytes (or the safety placeholder) and its parameters and parent link."""
    files = bot.services.files
    data = await asyncio.to_thread(files.read, image.file_hash)
    parameters = (await asyncio.to_thread(read_chunks, data)).get("parameters", "")
    if image.nsfw and not channel_allows_nsfw(bot, interaction.channel_id):
        data = hidden_png(image.width, image.height)
    lines = [f"Picture #{image.index + 1} of job {job.id} by <@{job.owner_id}>"]
    if parameters:
        lines.append(code_block(parameters[:1500]))
    if job.parent_job_id is not None:
        parent = await bot.services.jobs.get_job(job.parent_job_id)
        link = message_link(parent) if parent is not None else None
        lines.append(f"Made from job {job.parent_job_id}" + (f": {link}" if link else ""))
    return data, "\n".join(lines)
