"""The buttons under a result: persistent `DynamicItem`s whose custom_id carries action, job and image.

They survive restarts (no per-message state in memory): a click on a week-old grid still works.
"""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord

from bot.jobs import StoredImage
from generation.imagine import seeds_from
from generation.specs import MAX_SEED, spec_from_json
from storage.models import Job, JobState

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot

ACTION_LABELS = {"u": "U", "r": "🔄"}


def result_view(job: Job, images: Sequence[StoredImage]) -> discord.ui.View | None:
    """U1–U4 and reroll under an imagine grid; nothing under a single image or other jobs yet."""
    if len(images) < 2 or job.kind != "imagine":
        return None
    view = discord.ui.View(timeout=None)
    for index in range(len(images)):
        view.add_item(GridButton("u", job.id, index))
    view.add_item(GridButton("r", job.id, 0))
    return view


class GridButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"dc:(?P<action>[ur]):(?P<job>\d+):(?P<index>\d)"
):
    def __init__(self, action: str, job_id: int, index: int) -> None:
        label = f"U{index + 1}" if action == "u" else ACTION_LABELS[action]
        style = discord.ButtonStyle.secondary if action == "u" else discord.ButtonStyle.primary
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"dc:{action}:{job_id}:{index}")
        )
        self.action, self.job_id, self.index = action, job_id, index

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> GridButton:
        return cls(match["action"], int(match["job"]), int(match["index"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        from bot.discord_bot import DreamcordBot
        from bot.interactive import reply_error

        bot = interaction.client
        assert isinstance(bot, DreamcordBot)
        job = await bot.services.jobs.get_job(self.job_id)
        if job is None or job.state != JobState.DONE:
            await reply_error(interaction, "That result is no longer available.")
            return
        if self.action == "u":
            await self._send_single(bot, interaction, job)
        else:
            await self._reroll(bot, interaction, job)

    async def _send_single(self, bot: DreamcordBot, interaction: discord.Interaction, job: Job) -> None:
        images = await bot.services.jobs.images_of(job.id)
        if self.index >= len(images):
            await interaction.response.send_message("That image does not exist.", ephemeral=True)
            return
        image = images[self.index]
        data = bot.services.files.read(image.file_hash)
        caption = f"Image #{self.index + 1} of job {job.id} — <@{interaction.user.id}> · seed {image.seed}"
        await interaction.response.send_message(
            caption, file=discord.File(io.BytesIO(data), f"dreamcord_{job.id}_{self.index + 1}.png")
        )

    async def _reroll(self, bot: DreamcordBot, interaction: discord.Interaction, job: Job) -> None:
        spec = spec_from_json(job.spec_json)
        fresh = spec.model_copy(
            update={"seeds": seeds_from(secrets.randbelow(MAX_SEED + 1), len(spec.seeds))}
        )
        await bot.services.interactive.run(interaction, fresh, parent_job_id=job.id)
