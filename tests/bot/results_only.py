"""A stand-in for Discord that only cares about results: one object is every job's message."""

from __future__ import annotations

from datetime import datetime

from bot.tickets import JobMessage, JobTicket
from generation.events import Cancelled, Failed, Progress, Queued, Started
from storage.models import Job


class ResultsOnly:
    """bot.tickets.JobMessages and JobMessage at once; subclasses say how `deliver` posts."""

    def for_job(self, job_id: int) -> JobMessage:
        return self  # type: ignore[return-value]  # subclasses define deliver

    async def accepted(self, ticket: JobTicket) -> None:
        pass

    async def progress(self, event: Queued | Started | Progress) -> None:
        pass

    async def find_delivered(self, job: Job, origin_message_id: int | None, since: datetime) -> int | None:
        return None

    async def end(self, event: Failed | Cancelled) -> int | None:
        return None

    async def interrupted(self) -> None:
        pass

    def close(self) -> None:
        pass
