"""Where derived jobs (vary, upscale, outpaint) get their picture: a stored result (job + index) or
an uploaded image, which is checked, stored, and given a base spec from the prompt the user typed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import discord

from bot.attachments import read_attachment
from bot.captions import code_block, shown_text
from bot.delivery import channel_allows_nsfw
from bot.gate import viewer_of
from bot.images import hidden_png
from bot.job_stats import stats_lines
from bot.jobs import StoredImage
from bot.visibility import Viewer
from generation.config import upscale_setup
from generation.errors import DreamcordError
from generation.models.checkpoint_facts import native_resolution
from generation.pictures.provenance import read_chunks
from generation.pictures.uploads import UserImageError, open_user_image
from generation.prompt import parse_prompt, with_defaults, within_aspect
from generation.specs import PromptedSpec, UpscaleSetup, imagine_spec, spec_from_json
from storage.models import Job

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


@dataclass(frozen=True)
class Picture:
    """One stored picture and the spec it came from: what every derived spec starts from."""

    job_id: int | None  # None for an uploaded picture
    spec: PromptedSpec
    image: StoredImage
    resolution: int  # the native side of the model that will work on it
    seed: int | None = None  # a --seed the user typed for an upload; derived jobs draw new seeds otherwise
    upscale: UpscaleSetup = field(default_factory=UpscaleSetup)  # what the model's config says of upscaling

    @property
    def size(self) -> tuple[int, int]:
        return self.image.width, self.image.height


async def stored_picture(bot: DreamcordBot, job_id: int, index: int, viewer: Viewer) -> Picture:
    """Picture `index` (from 0) of finished job `job_id`, if `viewer` may see it; else a friendly error."""
    services = bot.services
    job = await services.jobs.visible_job(job_id, viewer)
    spec = spec_from_json(job.spec_json)
    images = await services.jobs.images_of(job_id)
    if not isinstance(spec, PromptedSpec) or not 0 <= index < len(images):
        raise DreamcordError(f"job {job_id} has no picture #{index + 1}")
    config = services.settings.model(spec.model)
    return Picture(job_id, spec, images[index], native_resolution(config), upscale=upscale_setup(config))


async def uploaded_picture(
    bot: DreamcordBot, upload: discord.Attachment, prompt: str | None, interaction: discord.Interaction
) -> Picture:
    """An attachment as a stored picture; `prompt` (with flags such as --model) says what it shows,
    completed by the asker's saved defaults."""
    user_id, guild_id = interaction.user.id, interaction.guild_id
    if not prompt:
        raise DreamcordError("describe the uploaded picture in `prompt` (e.g. 'a red fox in the snow')")
    data = await read_attachment(upload)
    image = await asyncio.to_thread(open_user_image, data, upload.filename)  # format, size, pixels
    if not within_aspect(image.width, image.height):
        raise UserImageError(
            f"{shown_text(upload.filename, 100)} is {image.width}x{image.height}: pictures from 1:4 to 4:1 "
            "can be varied, upscaled or extended; crop it first"
        )
    parsed = parse_prompt(prompt)
    defaults = await bot.services.admin.prompt_defaults(user_id, guild_id)
    if defaults is not None:
        parsed = with_defaults(parsed, defaults)
    config = bot.services.settings.model_for(parsed)
    resolution = native_resolution(config)
    (digest,) = await bot.services.jobs.store_files([data])
    base = imagine_spec(parsed, config, resolution, count=1)
    stored = StoredImage(0, None, digest, image.width, image.height)
    return Picture(None, base, stored, resolution, parsed.seed, upscale=upscale_setup(config))


async def chosen_picture(
    bot: DreamcordBot,
    interaction: discord.Interaction,
    upload: discord.Attachment | None,
    job: int | None,
    index: int | None,
    prompt: str | None,
) -> Picture:
    """The picture a command names: an upload, or picture `index` (from 1) of `job`; exactly one."""
    if (upload is None) == (job is None):
        raise DreamcordError("give either an `image` to upload or the `job` number of an earlier result")
    if upload is not None:
        return await uploaded_picture(bot, upload, prompt, interaction)
    assert job is not None
    picture = await stored_picture(bot, job, (index or 1) - 1, viewer_of(interaction))
    return with_prompt(picture, prompt) if prompt else picture


def with_prompt(picture: Picture, text: str) -> Picture:
    """The picture with a re-typed prompt (and its flags: --no, --steps, --cfg, --seed) for derived jobs."""
    parsed = parse_prompt(text)
    if parsed.model is not None and parsed.model != picture.spec.model:
        raise DreamcordError(
            f"this picture was made with model {picture.spec.model!r}; --model cannot change it here"
        )
    changes: dict[str, object] = {"prompt": parsed.text, "adapters": parsed.adapters}
    if parsed.negative:
        changes["negative_prompt"] = parsed.negative
    if parsed.steps is not None:
        changes["steps"] = parsed.steps
    if parsed.cfg is not None:
        changes["guidance"] = parsed.cfg
    seed = parsed.seed if parsed.seed is not None else picture.seed
    return replace(picture, spec=picture.spec.model_copy(update=changes), seed=seed)


def message_link(job: Job) -> str | None:
    if job.guild_id is None or job.channel_id is None or job.message_id is None:
        return None
    return f"https://discord.com/channels/{job.guild_id}/{job.channel_id}/{job.message_id}"


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
    lines += stats_lines(job.stats_json, job.created_at, job.started_at)
    if job.parent_job_id is not None:
        parent = await bot.services.jobs.get_job(job.parent_job_id)
        link = message_link(parent) if parent is not None else None
        lines.append(f"Made from job {job.parent_job_id}" + (f": {link}" if link else ""))
    return data, "\n".join(lines)
