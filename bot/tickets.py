"""What the job service hands out: accepted jobs (tickets) and their events, stored pictures, the
result sink it posts through, and the errors it raises for users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from generation.errors import DreamcordError
from generation.events import Cancelled, Event, Failed
from generation.outputs import JobOutput
from generation.specs import JobSpec
from storage.models import Job


class JobNotFound(DreamcordError):
    """No such job, or not one the asker may touch."""


class UnknownToken(DreamcordError):
    """A `<token>` in a prompt that is not in the user's library (the message lists theirs)."""


class TokenTaken(DreamcordError):
    """A training would give the user a second token of the same name."""


class Busy(DreamcordError):
    """The database stayed locked through every retry: the user is asked to try again."""


@dataclass(frozen=True)
class StoredImage:
    index: int
    seed: int | None
    file_hash: str
    width: int
    height: int
    nsfw: bool = False  # the safety checker flagged it: shown only where the channel allows it


@dataclass(frozen=True)
class Finished:
    """The last event a ticket yields for a successful job: its images are stored and recorded."""

    images: tuple[StoredImage, ...]
    output: JobOutput


TicketEvent = Event | Finished
FINAL_EVENTS = (Finished, Failed, Cancelled)


class ResultSink(Protocol):
    """Shows finished jobs to their owner (the Discord front end); returns the message id it posted."""

    async def deliver(
        self, job: Job, images: Sequence[StoredImage], origin_message_id: int | None = None
    ) -> int | None: ...

    async def find_delivered(self, job: Job, origin_message_id: int | None, since: datetime) -> int | None:
        """The message showing `job`'s result if one was sent (from `since` on) but never recorded."""
        ...


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
