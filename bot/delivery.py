"""Showing jobs in Discord: throttled progress edits, then the result posted exactly once.

While the interaction token is alive (15 minutes) the job's own "thinking…" message is edited;
after that, or after a restart, the result goes to the channel as a message sent with the bot token.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import discord

from bot.images import HIDDEN_NOTE, fit_to_limit, grid_png, hidden_png
from bot.jobs import StoredImage
from storage.files import FileStore
from storage.models import Job

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.5  # at most one progress edit per job this often (Discord rate limits edits)
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
EXPIRED_TOKEN_CODES = {50027, 10015}  # invalid webhook token, unknown webhook
UNKNOWN_MESSAGE = 10008
HISTORY_LOOKBACK = timedelta(minutes=1)  # our clock and Discord's may differ a little
HISTORY_LIMIT = 500  # messages read after the intent; a result is posted within seconds of it

ViewFactory = Callable[[Job, Sequence[StoredImage]], discord.ui.View | None]
CaptionFactory = Callable[[Job], str]


class JobMessage:
    """The message that shows one job while it runs; edits are serialised and stop once it is final.

    Progress edits are coalesced: at most one per PROGRESS_INTERVAL_S, and the latest text always
    goes out (a trailing edit), so a job that stops changing still shows where it stands.
    """

    def __init__(self, interaction: discord.Interaction, controls: discord.ui.View | None = None) -> None:
        self.interaction = interaction
        self.controls = controls  # e.g. a Cancel button, shown while the job is queued or running
        self.lock = asyncio.Lock()
        self.final = False
        self._last_edit = -PROGRESS_INTERVAL_S
        self._pending: str | None = None
        self._preview: bytes | None = None  # the newest low-resolution preview not shown yet
        self._trailing: asyncio.Task[None] | None = None

    @property
    def token_alive(self) -> bool:
        return not self.interaction.is_expired()

    async def progress(self, text: str, *, force: bool = False, preview: bytes | None = None) -> None:
        """Show `text` (and a preview picture) now if allowed (or `force`), else as soon as the interval
        has passed."""
        if self.final or not self.token_alive:
            return
        self._pending = text
        if preview is not None:
            self._preview = preview
        wait = self._last_edit + PROGRESS_INTERVAL_S - time.monotonic()
        if force or wait <= 0:
            await self._flush()
        elif self._trailing is None:
            self._trailing = asyncio.create_task(self._flush_after(wait))

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._trailing = None
        await self._flush()

    async def _flush(self) -> None:
        async with self.lock:
            if self.final or self._pending is None:
                return
            text, self._pending = self._pending, None
            preview, self._preview = self._preview, None
            self._last_edit = time.monotonic()
            attachments = (
                [discord.File(io.BytesIO(preview), "preview.png")] if preview else discord.utils.MISSING
            )
            try:
                # MISSING leaves the message's components (and picture) as they are; a view replaces them.
                await self.interaction.edit_original_response(
                    content=text, view=self.controls or discord.utils.MISSING, attachments=attachments
                )
            except discord.HTTPException as error:
                log.info("progress edit failed (%s); carrying on", error)

    def close(self) -> None:
        """No more progress: the result or the failure takes the message over."""
        self.final = True
        if self._trailing is not None:
            self._trailing.cancel()

    async def fail(self, text: str) -> discord.Message | None:
        """End the message with `text`; once the interaction has expired, `text` goes to the channel as
        a new message, which is returned (a message a moderator deleted stays deleted)."""
        async with self.lock:
            self.close()
            try:
                await self.interaction.edit_original_response(content=text, attachments=[], view=None)
            except discord.HTTPException as error:
                if error.code not in EXPIRED_TOKEN_CODES:
                    log.info("could not show the end of a job (%s); leaving it", error)
                    return None
                return await self.interaction.channel.send(text)  # type: ignore[union-attr]
            return None


def result_file_stem(job_id: int) -> str:
    """The name of a result's attachment: it marks the message as that job's result."""
    return f"dreamcord_{job_id}"


def channel_allows_nsfw(client: discord.Client, channel_id: int | None) -> bool:
    """Only channels Discord marks age-restricted (NSFW) may show pictures the safety checker flagged."""
    channel = client.get_channel(channel_id) if channel_id is not None else None
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw is not None and is_nsfw())


class DiscordResultSink:
    """The job service's ResultSink for Discord."""

    def __init__(
        self, client: discord.Client, files: FileStore, caption: CaptionFactory, view: ViewFactory
    ) -> None:
        self.client = client
        self.files = files
        self.caption = caption
        self.view = view
        self.live: dict[int, JobMessage] = {}

    def track(
        self, job_id: int, interaction: discord.Interaction, controls: discord.ui.View | None = None
    ) -> JobMessage:
        self.live[job_id] = message = JobMessage(interaction, controls)
        return message

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
        content, view = self.caption(job), self.view(job, images)
        hidden = 0 if allow_nsfw else sum(image.nsfw for image in images)
        if hidden:
            content += f" · {hidden} of {len(images)} {HIDDEN_NOTE}"
        return data, content, view

    def close(self) -> None:
        """The bot is stopping: every job message stops showing progress (its job resumes on the
        next start and is posted then), and nothing of them is kept."""
        for message in self.live.values():
            message.close()
        self.live.clear()

    def untrack(self, job_id: int) -> None:
        """The job ended without a result (failed, cancelled): nothing of it is kept."""
        self.live.pop(job_id, None)

    async def deliver(
        self, job: Job, images: Sequence[StoredImage], origin_message_id: int | None = None
    ) -> int | None:
        """Show the result: as an edit of the job's own message while its interaction lives, else as a
        channel post. `origin_message_id` is that own message: if a moderator deleted it, the deletion
        is respected (nothing is posted, and its id is returned so the job counts as delivered)."""
        data, content, view = await self.render(job, images, job.channel_id)
        live = self.live.pop(job.id, None)
        if live is not None and live.token_alive:
            async with live.lock:
                live.close()
                try:
                    attachments = []
                    if data is not None:
                        fitted, name = await asyncio.to_thread(
                            fit_to_limit,
                            data,
                            live.interaction.filesize_limit,
                            f"{result_file_stem(job.id)}.png",
                        )
                        attachments = [discord.File(io.BytesIO(fitted), name)]
                    message = await live.interaction.edit_original_response(
                        content=content, attachments=attachments, view=view
                    )
                    return message.id
                except discord.HTTPException as error:
                    if error.code == UNKNOWN_MESSAGE and origin_message_id is not None:
                        log.info("job %d: its message was deleted; the result is not posted", job.id)
                        return origin_message_id
                    if error.code not in EXPIRED_TOKEN_CODES:
                        raise
                    log.info("job %d: interaction token expired; posting to the channel instead", job.id)
        elif origin_message_id is not None and await self._was_deleted(job, origin_message_id):
            log.info("job %d: its message was deleted while the bot was away; not posted", job.id)
            return origin_message_id
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
