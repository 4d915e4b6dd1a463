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

from bot.interactive import reply_error
from bot.jobs import StoredImage
from generation.derive import vary_spec
from generation.imagine import seeds_from
from generation.specs import MAX_SEED, STRONG_STRENGTH, PromptedSpec, spec_from_json
from storage.models import Job, JobState

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot

ACTION_LABELS = {"u": "U", "v": "V", "r": "🔄"}
GRID_KINDS = ("imagine", "vary")


def result_view(job: Job, images: Sequence[StoredImage]) -> discord.ui.View | None:
    """U1–U4, reroll and V1–V4 under an imagine or vary grid; nothing under a single image or other jobs yet."""
    if len(images) < 2 or job.kind not in GRID_KINDS:
        return None
    view = discord.ui.View(timeout=None)
    for index in range(len(images)):
        view.add_item(GridButton("u", job.id, index))
    view.add_item(GridButton("r", job.id, 0))
    for index in range(len(images)):
        view.add_item(GridButton("v", job.id, index))
    return view


class GridButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"dc:(?P<action>[urv]):(?P<job>\d+):(?P<index>\d)",
):
    def __init__(self, action: str, job_id: int, index: int) -> None:
        label = ACTION_LABELS[action] + (str(index + 1) if action in "uv" else "")
        style = discord.ButtonStyle.primary if action == "r" else discord.ButtonStyle.secondary
        row = 1 if action == "v" else 0  # U1-U4 and reroll on top, V1-V4 below
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"dc:{action}:{job_id}:{index}", row=row)
        )
        self.action, self.job_id, self.index = action, job_id, index

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> GridButton:
        return cls(match["action"], int(match["job"]), int(match["index"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        from bot.discord_bot import DreamcordBot

        bot = interaction.client
        assert isinstance(bot, DreamcordBot)
        job = await bot.services.jobs.get_job(self.job_id)
        if job is None or job.state != JobState.DONE:
            await reply_error(interaction, "That result is no longer available.")
            return
        if self.action == "u":
            await self._send_single(bot, interaction, job)
        elif self.action == "v":
            await self._vary(bot, interaction, job)
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

    async def _vary(self, bot: DreamcordBot, interaction: discord.Interaction, job: Job) -> None:
        """Strong variations of image `index`, owned by whoever pressed (their tokens, not the owner's)."""
        spec = spec_from_json(job.spec_json)
        images = await bot.services.jobs.images_of(job.id)
        if not isinstance(spec, PromptedSpec) or self.index >= len(images):
            await reply_error(interaction, "That image cannot be varied.")
            return
        variation = vary_spec(spec, images[self.index].file_hash, STRONG_STRENGTH)
        await bot.services.interactive.run(interaction, variation, parent_job_id=job.id)
