"""What the job service hands out: accepted jobs (tickets) and their events, stored pictures, the
messages it shows jobs through, and the errors it raises for users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from generation.errors import DreamcordError
from generation.events import Cancelled, Event, Failed, Progress, Queued, Started
from generation.outputs import JobOutput
from generation.specs import JobSpec
from storage.jobs import StoredImage
from storage.models import Job


class JobNotFound(DreamcordError):
    """No such job, or not one the asker may touch."""


class UnknownToken(DreamcordError):
    """A `<token>` in a prompt that is not in the user's library (the message lists theirs)."""


class TokenTaken(DreamcordError):
    """A training would give the user a second token of the same name."""


class Busy(DreamcordError):
    """The database stayed locked through every retry: the user is asked to try again."""


class Restarting(DreamcordError):
    """The bot is stopping (a restart or an update): nothing new is queued until it is back."""

    def __init__(self) -> None:
        super().__init__(
            "dreamcord is restarting right now, so nothing new is queued; try again in a minute "
            "(your earlier jobs are kept and finish after the restart)"
        )


@dataclass(frozen=True)
class Finished:
    """The last event a ticket yields for a successful job: its images are stored and recorded."""

    images: tuple[StoredImage, ...]
    output: JobOutput


TicketEvent = Event | Finished
FINAL_EVENTS = (Finished, Failed, Cancelled)


class JobMessage(Protocol):
    """What one job's owner sees of it (its Discord message), from "queued" to the result or the end.
    The job service's follower of the job is its only driver, one event at a time and in order."""

    async def accepted(self, ticket: JobTicket) -> None:
        """The job is persisted and queued: it has its id now."""

    async def progress(self, event: Queued | Started | Progress) -> None: ...

    async def deliver(
        self, job: Job, images: Sequence[StoredImage], origin_message_id: int | None = None
    ) -> int | None:
        """Show the result; the id of the message that shows it."""
        ...

    async def find_delivered(self, job: Job, origin_message_id: int | None, since: datetime) -> int | None:
        """The message showing `job`'s result if one was sent (from `since` on) but never recorded."""
        ...

    async def end(self, event: Failed | Cancelled) -> int | None:
        """Show that the job failed or was cancelled; the id of a new message posted for it, if any."""
        ...

    async def interrupted(self) -> None:
        """The bot is stopping before the job's end: say that it resumes after the restart."""

    def close(self) -> None:
        """No more showing (the bot stops; the job resumes and is posted on the next start)."""


class JobMessages(Protocol):
    """Makes the message of a job nobody watches live: one resumed after a restart, one submitted
    without a message of its own, or a result a previous process stored but never posted."""

    def for_job(self, job_id: int) -> JobMessage: ...


@dataclass
class JobTicket:
    """A job the service accepted: its id, and its events after the service has recorded them."""

    job_id: int
    owner_id: int
    spec: JobSpec
    relax: bool = False  # the owner's Fast time is used up: it runs when no Fast job waits
    listened: bool = True  # False: nobody reads its progress (a resumed job), only its final event is kept
    # None: the service stopped following the job (the bot is closing; the job resumes on the next start)
    _events: asyncio.Queue[TicketEvent | None] = field(default_factory=asyncio.Queue)

    async def events(self) -> AsyncIterator[TicketEvent]:
        """Queued/Started/Progress as they come, then Finished, Failed or Cancelled (never Done); it
        ends early, without a final event, when the service closes."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event
            if isinstance(event, FINAL_EVENTS):
                return

    async def wait(self) -> TicketEvent:
        """The final event: Finished, Failed or Cancelled."""
        events = [event async for event in self.events()]
        return events[-1]
