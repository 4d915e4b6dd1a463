"""One job's Discord message through its whole life: "queued", progress (with previews), then the
result, a failure or "cancelled". The job service's follower of the job drives it; nothing else
touches the message.

While the interaction token is alive (15 minutes) the job's own "thinking…" message is edited; after
that, or for a job nobody watches live (resumed after a restart), the result or the end goes to the
channel as a new message sent with the bot token.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import discord

from bot.captions import job_title, shown_text
from bot.delivery import EXPIRED_TOKEN_CODES, UNKNOWN_MESSAGE, DiscordResults
from bot.tickets import JobTicket
from generation.events import Cancelled, Failed, Progress, Queued, Started
from generation.pool.eta import describe_seconds
from storage.jobs import StoredImage
from storage.models import Job

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.5  # at most one progress edit per job this often (Discord rate limits edits)

ControlsFactory = Callable[[int], discord.ui.View]


def progress_text(title: str, event: Queued | Started | Progress) -> tuple[str, bool]:
    """The line a job's message shows for `event`, and whether it goes out at once (not throttled)."""
    if isinstance(event, Queued):
        wait = f" · starts in {describe_seconds(event.eta_s)}" if event.eta_s is not None else ""
        return f"**{title}** — waiting, position {event.position} in the queue{wait}", False
    if isinstance(event, Started):
        return f"**{title}** — starting", True
    note = f" · {event.note}" if event.note else ""
    if event.eta_s is not None and not event.note:  # a training's note has its own time left
        note = f" · {describe_seconds(event.eta_s)} left"
    return f"**{title}** — step {event.step}/{event.total}{note}", False


class DiscordJobMessage:
    """bot.tickets.JobMessage for Discord. Edits are serialised and stop once the message is final.

    Progress edits are coalesced: at most one per PROGRESS_INTERVAL_S, and the latest text always
    goes out (a trailing edit), so a job that stops changing still shows where it stands.
    """

    def __init__(
        self,
        results: DiscordResults,
        interaction: discord.Interaction | None = None,
        controls: ControlsFactory | None = None,
    ) -> None:
        self.results = results
        self.interaction = interaction  # None: no live message, only the result or the end is posted
        self.controls_factory = controls  # e.g. a Cancel button, shown while the job waits or runs
        self.controls: discord.ui.View | None = None
        self.title = ""
        self.lock = asyncio.Lock()
        self.final = False
        self._last_edit = -PROGRESS_INTERVAL_S
        self._pending: str | None = None
        self._preview: bytes | None = None  # the newest low-resolution preview not shown yet
        self._trailing: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        """The job's own message can still be edited."""
        return self.interaction is not None and not self.interaction.is_expired()

    async def accepted(self, ticket: JobTicket) -> None:
        self.title = job_title(ticket.spec) + (" · relax mode" if ticket.relax else "")
        if self.controls_factory is not None:
            self.controls = self.controls_factory(ticket.job_id)
        await self._show(f"**{self.title}** — queued (job {ticket.job_id})", force=True)

    async def progress(self, event: Queued | Started | Progress) -> None:
        text, now = progress_text(self.title, event)
        await self._show(text, force=now, preview=event.preview if isinstance(event, Progress) else None)

    async def _show(self, text: str, *, force: bool = False, preview: bytes | None = None) -> None:
        """Show `text` (and a preview picture) now if allowed (or `force`), else as soon as the interval
        has passed."""
        if self.final or not self.live:
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
            if self.final or self._pending is None or self.interaction is None:
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

    async def interrupted(self) -> None:
        await self._show(
            f"**{self.title}** — paused: the bot is restarting; the job carries on when it is back",
            force=True,
        )
        self.close()

    def close(self) -> None:
        """No more progress: the result or the end takes the message over, or the bot stops."""
        self.final = True
        if self._trailing is not None:
            self._trailing.cancel()

    async def deliver(
        self, job: Job, images: Sequence[StoredImage], origin_message_id: int | None = None
    ) -> int | None:
        """Show the result: as an edit of the job's own message while its interaction lives, else as a
        channel post. If a moderator deleted the job's own message, the deletion is respected."""
        async with self.lock:
            live = self.live
            self.close()
            if live and self.interaction is not None:
                try:
                    return (await self.results.edit_into(self.interaction, job, images)).id
                except discord.HTTPException as error:
                    if error.code == UNKNOWN_MESSAGE and origin_message_id is not None:
                        log.info("job %d: its message was deleted; the result is not posted", job.id)
                        return origin_message_id
                    if error.code not in EXPIRED_TOKEN_CODES:
                        raise
                    log.info("job %d: interaction token expired; posting to the channel instead", job.id)
                    origin_message_id = None  # it exists; only the token lapsed
        return await self.results.post(job, images, origin_message_id)

    async def find_delivered(self, job: Job, origin_message_id: int | None, since: datetime) -> int | None:
        return await self.results.find_delivered(job, origin_message_id, since)

    async def end(self, event: Failed | Cancelled) -> int | None:
        """End the message with the failure or "cancelled"; once the interaction has expired (or for a
        job without a live message) that goes to the channel as a new message, whose id is returned
        (a message a moderator deleted stays deleted)."""
        ending = f"failed: {shown_text(event.reason, 300)}" if isinstance(event, Failed) else "cancelled"
        text = f"**{self.title}** — {ending}" if self.title else f"Job {ending}"
        async with self.lock:
            self.close()
            if self.interaction is None:
                return None  # a job nobody watched: its owner sees the end in /queue
            try:
                await self.interaction.edit_original_response(content=text, attachments=[], view=None)
            except discord.HTTPException as error:
                if error.code not in EXPIRED_TOKEN_CODES:
                    log.info("could not show the end of a job (%s); leaving it", error)
                    return None
                posted = await self.interaction.channel.send(text)  # type: ignore[union-attr]
                return posted.id
            return None


class DiscordJobMessages:
    """Makes each job's message (bot.tickets.JobMessages); a cog may register the buttons shown while
    a job waits (`controls`), and bot.delivery's `results.result_view` the ones under results."""

    def __init__(self, results: DiscordResults) -> None:
        self.results = results
        self.controls: ControlsFactory | None = None

    def for_interaction(self, interaction: discord.Interaction) -> DiscordJobMessage:
        return DiscordJobMessage(self.results, interaction, self.controls)

    def for_job(self, job_id: int) -> DiscordJobMessage:
        return DiscordJobMessage(self.results)
