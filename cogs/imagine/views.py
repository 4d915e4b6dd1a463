"""The buttons under a result: persistent `DynamicItem`s whose custom_id carries action, job and image.

They survive restarts (no per-message state in memory): a click on a week-old grid still works.
Under a grid: U1–U4, reroll, V1–V4. Under a single picture (after U, or an upscale): vary, upscale,
zoom out, make square and pan (cogs/imagine/actions.py says what each makes).
"""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord

from bot.delivery import channel_allows_nsfw
from bot.images import HIDDEN_NOTE
from bot.interactive import reply_error
from bot.jobs import StoredImage
from cogs.imagine.actions import IMAGE_ACTIONS, vary
from cogs.pictures import Picture, stored_picture
from generation.derive import parse_box
from generation.errors import DreamcordError
from generation.imagine import seeds_from
from generation.specs import MAX_PROMPT_CHARS, MAX_SEED, REGION_STRENGTH, STRONG_STRENGTH, spec_from_json
from storage.models import Job, JobState

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot

ACTION_LABELS = {"u": "U", "v": "V", "r": "🔄"}


def result_view(job: Job, images: Sequence[StoredImage]) -> discord.ui.View | None:
    """Grid buttons under a grid, picture buttons under a single picture, none under other jobs."""
    if not images or job.kind in ("train", "import"):
        return None
    if len(images) == 1:
        return picture_view(job.id, 0, images[0])
    view = discord.ui.View(timeout=None)
    for index in range(len(images)):
        view.add_item(GridButton("u", job.id, index))
    view.add_item(GridButton("r", job.id, 0))
    for index in range(len(images)):
        view.add_item(GridButton("v", job.id, index))
    return view


def picture_view(job_id: int, index: int, image: StoredImage) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in IMAGE_ACTIONS:
        if action == "sq" and image.width == image.height:
            continue  # already square
        view.add_item(PictureButton(action, job_id, index))
    return view


def _bot(interaction: discord.Interaction) -> DreamcordBot:
    from bot.discord_bot import DreamcordBot

    bot = interaction.client
    assert isinstance(bot, DreamcordBot)
    return bot


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
        bot = _bot(interaction)
        job = await bot.services.jobs.get_job(self.job_id)
        if job is None or job.state != JobState.DONE:
            await reply_error(interaction, "That result is no longer available.")
            return
        if self.action == "u":
            await self._send_single(bot, interaction, job)
        elif self.action == "v":
            await self._vary(bot, interaction)
        else:
            await self._reroll(bot, interaction, job)

    async def _send_single(self, bot: DreamcordBot, interaction: discord.Interaction, job: Job) -> None:
        images = await bot.services.jobs.images_of(job.id)
        if self.index >= len(images):
            await interaction.response.send_message("That image does not exist.", ephemeral=True)
            return
        image = images[self.index]
        if image.nsfw and not channel_allows_nsfw(bot, interaction.channel_id):
            await reply_error(interaction, f"That picture was {HIDDEN_NOTE}.")
            return
        data = bot.services.files.read(image.file_hash)
        caption = f"Image #{self.index + 1} of job {job.id} — <@{interaction.user.id}> · seed {image.seed}"
        await interaction.response.send_message(
            caption,
            file=discord.File(io.BytesIO(data), f"dreamcord_{job.id}_{self.index + 1}.png"),
            view=picture_view(job.id, self.index, image),
        )

    async def _reroll(self, bot: DreamcordBot, interaction: discord.Interaction, job: Job) -> None:
        spec = spec_from_json(job.spec_json)
        fresh = spec.model_copy(
            update={"seeds": seeds_from(secrets.randbelow(MAX_SEED + 1), len(spec.seeds))}
        )
        await bot.services.interactive.run(interaction, fresh, parent_job_id=job.id)

    async def _vary(self, bot: DreamcordBot, interaction: discord.Interaction) -> None:
        """Strong variations of image `index`, owned by whoever pressed (their tokens, not the owner's)."""
        try:
            picture = await stored_picture(bot, self.job_id, self.index)
            spec = vary(picture, STRONG_STRENGTH)
        except DreamcordError as error:
            await reply_error(interaction, str(error))
            return
        await bot.services.interactive.run(interaction, spec, parent_job_id=self.job_id)


class PictureButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"dc:(?P<action>" + "|".join(IMAGE_ACTIONS) + r"):(?P<job>\d+):(?P<index>\d)",
):
    def __init__(self, action: str, job_id: int, index: int) -> None:
        what = IMAGE_ACTIONS[action]
        super().__init__(
            discord.ui.Button(
                label=what.label,
                style=discord.ButtonStyle.secondary,
                custom_id=f"dc:{action}:{job_id}:{index}",
                row=what.row,
            )
        )
        self.action, self.job_id, self.index = action, job_id, index

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> PictureButton:
        return cls(match["action"], int(match["job"]), int(match["index"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = _bot(interaction)
        build = IMAGE_ACTIONS[self.action].build
        try:
            picture = await stored_picture(bot, self.job_id, self.index)
            if build is None:
                await interaction.response.send_modal(RegionForm(picture))
                return
            spec = build(picture)
        except DreamcordError as error:
            await reply_error(interaction, str(error))
            return
        await bot.services.interactive.run(interaction, spec, parent_job_id=self.job_id)


class RegionForm(discord.ui.Modal, title="Vary (Region)"):
    """Which part of the picture to repaint (a box in percent) and what to paint there."""

    region: discord.ui.TextInput[RegionForm] = discord.ui.TextInput(
        label="Region: left, top, right, bottom in %",
        placeholder="25, 25, 75, 75",
        default="25, 25, 75, 75",
        max_length=40,
    )

    def __init__(self, picture: Picture) -> None:
        super().__init__(timeout=15 * 60)
        self.picture = picture
        self.prompt: discord.ui.TextInput[RegionForm] = discord.ui.TextInput(
            label="What to paint there",
            style=discord.TextStyle.paragraph,
            default=picture.spec.prompt,
            max_length=MAX_PROMPT_CHARS,
        )
        self.add_item(self.prompt)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        try:
            spec = vary(
                self.picture, REGION_STRENGTH, box=parse_box(self.region.value), prompt=self.prompt.value
            )
        except DreamcordError as error:
            await reply_error(interaction, str(error))
            return
        await _bot(interaction).services.interactive.run(interaction, spec, parent_job_id=self.picture.job_id)
