"""A job's result as a Discord message: rendered (grid, caption, buttons), edited into the job's own
message or posted to its channel, and found again after a restart (bot.job_messages drives it).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import discord

from bot.images import HIDDEN_NOTE, fit_to_limit, grid_png, hidden_png
from bot.jobs import StoredImage
from storage.files import FileStore
from storage.models import Job

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
EXPIRED_TOKEN_CODES = {50027, 10015}  # invalid webhook token, unknown webhook
UNKNOWN_MESSAGE = 10008
HISTORY_LOOKBACK = timedelta(minutes=1)  # our clock and Discord's may differ a little
HISTORY_LIMIT = 500  # messages read after the intent; a result is posted within seconds of it

ViewFactory = Callable[[Job, Sequence[StoredImage]], discord.ui.View | None]
PictureViewFactory = Callable[[Job, int, StoredImage], discord.ui.View]  # job, picture index, picture
CaptionFactory = Callable[[Job], str]


def result_file_stem(job_id: int) -> str:
    """The name of a result's attachment: it marks the message as that job's result."""
    return f"dreamcord_{job_id}"


def channel_allows_nsfw(client: discord.Client, channel_id: int | None) -> bool:
    """Only channels Discord marks age-restricted (NSFW) may show pictures the safety checker flagged."""
    channel = client.get_channel(channel_id) if channel_id is not None else None
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw is not None and is_nsfw())


class DiscordResults:
    """Renders results and posts them; the buttons under them come from whichever cog registered a
    `result_view`, or a view for the job's kind in `kind_views` (none registered: results have no buttons)."""

    def __init__(self, client: discord.Client, files: FileStore, caption: CaptionFactory) -> None:
        self.client = client
        self.files = files
        self.caption = caption
        self.result_view: ViewFactory | None = None
        self.kind_views: dict[str, ViewFactory] = {}  # a job kind's own buttons (/describe's numbers)
        self.picture_view: PictureViewFactory | None = None  # one picture's buttons (/show job index)

    async def render(
        self, job: Job, images: Sequence[StoredImage], channel_id: int | None
    ) -> tuple[bytes | None, str, discord.ui.View | None]:
        """The result as a message for `channel_id`: picture (or grid) bytes, caption, buttons.
        Flagged pictures become placeholders unless the channel is age-restricted."""
        allow_nsfw = channel_allows_nsfw(self.client, channel_id)
        data = (
            await asyncio.to_thread(lambda: grid_png([self._shown(image, allow_nsfw) for image in images]))
            if images
            else None  # e.g. an import: a message, no picture
        )
        content = self.caption(job)
        make_view = self.kind_views.get(job.kind, self.result_view)
        view = make_view(job, images) if make_view is not None else None
        hidden = 0 if allow_nsfw else sum(image.nsfw for image in images)
        if hidden:
            content += f" · {hidden} of {len(images)} {HIDDEN_NOTE}"
        return data, content, view

    async def edit_into(
        self, interaction: discord.Interaction, job: Job, images: Sequence[StoredImage]
    ) -> discord.InteractionMessage:
        """Show the result in the interaction's own message (raises discord.HTTPException)."""
        data, content, view = await self.render(job, images, job.channel_id)
        attachments = []
        if data is not None:
            fitted, name = await asyncio.to_thread(
                fit_to_limit, data, interaction.filesize_limit, f"{result_file_stem(job.id)}.png"
            )
            attachments = [discord.File(io.BytesIO(fitted), name)]
        return await interaction.edit_original_response(content=content, attachments=attachments, view=view)

    async def post(self, job: Job, images: Sequence[StoredImage], origin_message_id: int | None) -> int:
        """Post the result to the job's channel; if the job's own message (`origin_message_id`) was
        deleted while the bot was away, the deletion is respected: nothing is posted, and that id is
        returned so the job counts as delivered."""
        if origin_message_id is not None and await self._was_deleted(job, origin_message_id):
            log.info("job %d: its message was deleted while the bot was away; not posted", job.id)
            return origin_message_id
        data, content, view = await self.render(job, images, job.channel_id)
        return await self._post_to_channel(job, data, content, view)

    async def find_delivered(self, job: Job, origin_message_id: int | None, since: datetime) -> int | None:
        """After a restart, the message that already shows `job`'s result, if sending it started at
        `since` and its id was never recorded: the job's own message if it was edited to show it, else a
        message of ours posted in the channel since then. Results are recognised by their attachment's
        name (dreamcord_<job>.png/.jpg), or a text-only result by its caption. When the channel cannot
        be read, None: the result is posted, and Discord's nonce still drops a recent duplicate."""
        assert job.channel_id is not None
        channel = self.client.get_partial_messageable(job.channel_id)
        since = since if since.tzinfo else since.replace(tzinfo=UTC)  # SQLite returns naive UTC
        try:
            if origin_message_id is not None:
                try:
                    origin = await channel.fetch_message(origin_message_id)
                except discord.NotFound:
                    pass  # deleted: deliver() respects that
                else:
                    if self._shows_result(job, origin):
                        return origin.id
            after = discord.Object(discord.utils.time_snowflake(since - HISTORY_LOOKBACK))
            async for message in channel.history(after=after, limit=HISTORY_LIMIT, oldest_first=True):
                if self._shows_result(job, message):
                    return message.id
        except discord.HTTPException as error:
            log.warning("job %d: could not look for an earlier post of its result (%s)", job.id, error)
        return None

    def _shows_result(self, job: Job, message: discord.Message) -> bool:
        me = self.client.user
        if me is None or message.author.id != me.id:
            return False
        if message.attachments:
            return any(a.filename.startswith(f"{result_file_stem(job.id)}.") for a in message.attachments)
        return message.content.startswith(self.caption(job))

    async def _was_deleted(self, job: Job, message_id: int) -> bool:
        assert job.channel_id is not None
        try:
            await self.client.get_partial_messageable(job.channel_id).fetch_message(message_id)
        except discord.NotFound:
            return True
        except discord.HTTPException as error:  # e.g. no Read Message History: cannot tell, so post
            log.info("job %d: could not look for its message (%s); posting the result", job.id, error)
        return False

    def _shown(self, image: StoredImage, allow_nsfw: bool) -> bytes:
        """The picture's bytes, or a placeholder: a flagged picture is never uploaded where not allowed."""
        if image.nsfw and not allow_nsfw:
            return hidden_png(image.width, image.height)
        return self.files.read(image.file_hash)

    async def _post_to_channel(
        self, job: Job, data: bytes | None, content: str, view: discord.ui.View | None
    ) -> int:
        assert job.channel_id is not None
        channel = self.client.get_channel(job.channel_id) or await self.client.fetch_channel(job.channel_id)
        assert isinstance(channel, discord.abc.Messageable)
        # The nonce makes Discord drop a second post of the same job (e.g. a crash right after posting).
        nonce = f"dc-job-{job.id}"
        # The one ping the bot means: the owner, whose interaction (and its notification) has lapsed.
        owner = discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(job.owner_id)])
        if data is None:
            message = await channel.send(content, nonce=nonce, allowed_mentions=owner)
            return message.id
        limit = getattr(getattr(channel, "guild", None), "filesize_limit", DEFAULT_UPLOAD_LIMIT)
        fitted, name = await asyncio.to_thread(fit_to_limit, data, limit, f"{result_file_stem(job.id)}.png")
        file = discord.File(io.BytesIO(fitted), name)
        if view is None:
            message = await channel.send(content, file=file, nonce=nonce, allowed_mentions=owner)
        else:
            message = await channel.send(content, file=file, nonce=nonce, view=view, allowed_mentions=owner)
        return message.id
