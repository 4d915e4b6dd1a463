"""The buttons under a result: persistent `DynamicItem`s whose custom_id carries action, job and image.

They survive restarts (no per-message state in memory): a click on a week-old grid still works.
Under a grid: U1–U4, reroll, V1–V4 and Delete (cogs/imagine/delete.py). Under a single picture (after
U, or an upscale): vary, upscale, zoom out, make square and pan (cogs/actions.py says what each makes),
and Delete where the picture is its job's whole result.
"""

from __future__ import annotations

import asyncio
import io
import re
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import discord

from bot.delivery import channel_allows_nsfw
from bot.gate import viewer_of
from bot.images import HIDDEN_NOTE
from bot.interactive import answer_error
from bot.jobs import StoredImage
from bot.visibility import Viewer
from cogs.actions import IMAGE_ACTIONS, vary
from cogs.common import Gated, bot_of
from cogs.imagine.delete import DeleteButton
from cogs.imagine.forms import prompt_input, stateless_form, submitted_form
from cogs.imagine.remix import REMIX_ACTIONS, remix_form
from cogs.pictures import stored_picture
from generation.errors import DreamcordError
from generation.models.family_facts import FamilyFacts
from generation.specs import (
    MAX_SEED,
    REGION_STRENGTH,
    STRONG_STRENGTH,
    PromptedSpec,
    parse_box,
    seeds_from,
    spec_from_json,
)
from storage.models import Job

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot

ACTION_LABELS = {"u": "U", "v": "V", "r": "🔄"}


FamilyOf = Callable[[str], FamilyFacts | None]  # a model's family, if known without waiting


def result_view(
    job: Job, images: Sequence[StoredImage], family_of: FamilyOf = lambda model: None
) -> discord.ui.View | None:
    """Grid buttons under a grid, picture buttons under a single picture, none under other jobs; a
    button for what the model's family cannot do is left out."""
    if not images or job.kind in ("train", "import"):
        return None
    family = family_of(spec_from_json(job.spec_json).model)
    if len(images) == 1:
        return picture_view(job.id, 0, images[0], family, deletable=True)
    view = discord.ui.View(timeout=None)
    for index in range(len(images)):
        view.add_item(GridButton("u", job.id, index))
    view.add_item(GridButton("r", job.id, 0))
    if family is None or family.supports("vary"):
        for index in range(len(images)):
            view.add_item(GridButton("v", job.id, index))
    view.add_item(DeleteButton(job.id, row=1))
    return view


def picture_view(
    job_id: int, index: int, image: StoredImage, family: FamilyFacts | None = None, *, deletable: bool = False
) -> discord.ui.View:
    """`deletable`: the picture is its job's whole result (not U's copy of one of a grid's four), so
    Delete may go under it."""
    view = discord.ui.View(timeout=None)
    for key, action in IMAGE_ACTIONS.items():
        if key == "sq" and image.width == image.height:
            continue  # already square
        if family is not None and not family.supports(action.operation):
            continue
        view.add_item(PictureButton(key, job_id, index))
    if deletable:
        view.add_item(DeleteButton(job_id, row=1))
    return view


async def open_remix_form(
    bot: DreamcordBot, interaction: discord.Interaction, action: str, job_id: int, index: int
) -> bool:
    """In remix mode, answer the press with a form holding the picture's prompt; False otherwise."""
    if not await bot.services.admin.remix_on(interaction.user.id):
        return False
    picture = await stored_picture(bot, job_id, index, viewer_of(interaction))
    spec = picture.spec
    prompt = spec.prompt + (f" --no {spec.negative_prompt}" if spec.negative_prompt else "")
    await interaction.response.send_modal(remix_form(action, job_id, index, prompt))
    return True


class GridButton(
    Gated,
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
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> GridButton:
        return cls(match["action"], int(match["job"]), int(match["index"]))

    async def run(self, interaction: discord.Interaction) -> None:
        bot = bot_of(interaction)
        viewer = viewer_of(interaction)
        if self.action in REMIX_ACTIONS and await open_remix_form(
            bot, interaction, self.action, self.job_id, self.index
        ):
            return
        if self.action == "u":
            await self._send_single(
                bot, interaction, await bot.services.jobs.visible_job(self.job_id, viewer)
            )
        elif self.action == "v":
            await self._vary(bot, interaction, viewer)
        else:
            await self._reroll(bot, interaction, await bot.services.jobs.visible_job(self.job_id, viewer))

    async def _send_single(self, bot: DreamcordBot, interaction: discord.Interaction, job: Job) -> None:
        images = await bot.services.jobs.images_of(job.id)
        if self.index >= len(images):
            raise DreamcordError("That image does not exist.")
        image = images[self.index]
        if image.nsfw and not channel_allows_nsfw(bot, interaction.channel_id):
            raise DreamcordError(f"That picture was {HIDDEN_NOTE}.")
        data = await asyncio.to_thread(bot.services.files.read, image.file_hash)
        caption = f"Image #{self.index + 1} of job {job.id} — <@{interaction.user.id}> · seed {image.seed}"
        make_view = bot.services.results.picture_view  # with only the buttons the model's family can do
        view = make_view(job, self.index, image) if make_view else picture_view(job.id, self.index, image)
        sent = await interaction.response.send_message(
            caption,
            file=discord.File(io.BytesIO(data), f"dreamcord_{job.id}_{self.index + 1}.png"),
            view=view,
        )
        await bot.services.privacy.record_posted(  # /forget of the presser or the owner deletes it
            user_id=interaction.user.id,
            job_id=job.id,
            channel_id=interaction.channel_id,
            message_id=sent.message_id if sent is not None else None,
        )

    async def _reroll(self, bot: DreamcordBot, interaction: discord.Interaction, job: Job) -> None:
        spec = spec_from_json(job.spec_json)
        if not isinstance(spec, PromptedSpec):
            raise DreamcordError(f"job {job.id} made no pictures: nothing to reroll")
        fresh = spec.model_copy(
            update={"seeds": seeds_from(secrets.randbelow(MAX_SEED + 1), len(spec.seeds))}
        )
        await bot.services.interactive.run(interaction, fresh, parent_job_id=job.id)

    async def _vary(self, bot: DreamcordBot, interaction: discord.Interaction, viewer: Viewer) -> None:
        """Strong variations of image `index`, owned by whoever pressed (their tokens, not the owner's)."""
        picture = await stored_picture(bot, self.job_id, self.index, viewer)
        await bot.services.interactive.run(
            interaction, vary(picture, STRONG_STRENGTH), parent_job_id=self.job_id
        )


class PictureButton(
    Gated,
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
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> PictureButton:
        return cls(match["action"], int(match["job"]), int(match["index"]))

    async def run(self, interaction: discord.Interaction) -> None:
        bot = bot_of(interaction)
        if self.action in REMIX_ACTIONS and await open_remix_form(
            bot, interaction, self.action, self.job_id, self.index
        ):
            return
        build = IMAGE_ACTIONS[self.action].build
        picture = await stored_picture(bot, self.job_id, self.index, viewer_of(interaction))
        if build is None:
            await interaction.response.send_modal(region_form(self.job_id, self.index, picture.spec.prompt))
            return
        await bot.services.interactive.run(interaction, build(picture), parent_job_id=self.job_id)


REGION_FORM = re.compile(r"dc:vrf:(?P<job>\d+):(?P<index>\d)")


def region_form(job_id: int, index: int, prompt: str) -> discord.ui.Modal:
    """Vary (Region): which part of the picture to repaint (a box in percent) and what to paint there.

    The form keeps no state in memory: its custom_id names the picture and `submit_region_form` answers
    it from that, so a form opened before a restart still works after it."""
    region = discord.ui.TextInput[Any](
        label="Region: left, top, right, bottom in %",
        custom_id="region",
        placeholder="25, 25, 75, 75",
        default="25, 25, 75, 75",
        max_length=40,
    )
    return stateless_form(
        "Vary (Region)", f"dc:vrf:{job_id}:{index}", region, prompt_input("What to paint there", prompt)
    )


async def submit_region_form(interaction: discord.Interaction) -> None:
    """Answer a submitted Vary (Region) form (interactions of any other kind are left alone)."""
    if (submitted := await submitted_form(interaction, REGION_FORM)) is None:
        return
    match, values = submitted
    bot = bot_of(interaction)
    job_id, index = int(match["job"]), int(match["index"])
    try:
        picture = await stored_picture(bot, job_id, index, viewer_of(interaction))
        box = parse_box(values.get("region", ""))
        spec = vary(picture, REGION_STRENGTH, box=box, prompt=values.get("prompt") or None)
        await bot.services.interactive.run(interaction, spec, parent_job_id=job_id)
    except Exception as error:
        await answer_error(interaction, error, "form Vary (Region)")
