"""Each unfinished job's one owner in this process: a task that records every event of the job in
the database, shows it on the job's message, and passes it on to the job's ticket. The database always
knows at least what the user saw; the result is stored, then posted once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.job_results import deliver_once, finish, store_result
from bot.metrics import JOB_SECONDS, JOBS_FINISHED
from bot.privacy import PrivacyService
from bot.tickets import FINAL_EVENTS, Finished, JobMessage, JobTicket, TicketEvent
from generation.events import Cancelled, Done, Event, Failed, Progress, Queued, Started
from generation.pool.workers import JobHandle
from generation.specs import JobSpec
from storage import jobs as job_store
from storage.db import retry_when_busy, write_transaction
from storage.files import FileStore, StoredFileDamaged, StoredFileMissing
from storage.models import Job, JobState

log = logging.getLogger(__name__)
RECORD_TRIES = 8  # a follower's tries at recording one event (backing off up to 30 s between them)

Discard = Callable[[Sequence[str], int], Awaitable[None]]  # files a job is done with, that job's id


async def _get_job(sessions: async_sessionmaker[AsyncSession], job_id: int) -> Job | None:
    async with sessions() as session:
        return await job_store.get_job(session, job_id)


class JobFollowers:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        files: FileStore,
        privacy: PrivacyService | None,
        discard: Discard,
    ) -> None:
        self.sessions = sessions
        self.files = files
        self.privacy = privacy
        self._discard = discard
        self._tasks: dict[int, asyncio.Task[None]] = {}  # one per job not in a final state
        self._shown: dict[int, JobMessage] = {}  # each follower's message, to silence them on close
        self._started_at: dict[int, float] = {}  # monotonic time of each running job's start

    def __contains__(self, job_id: int) -> bool:
        return job_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def task_of(self, job_id: int) -> asyncio.Task[None] | None:
        return self._tasks.get(job_id)

    def stop_showing(self) -> None:
        """Every job's message stops changing (the bot is closing); the jobs resume on the next start."""
        for message in self._shown.values():
            message.close()

    async def interrupt(self) -> None:
        """Tell every unfinished job's message that the bot is stopping (best effort, in parallel)."""
        messages = list(self._shown.values())
        await asyncio.gather(*(message.interrupted() for message in messages), return_exceptions=True)

    async def close(self) -> None:
        """Stop following; whatever is unfinished stays queued/running in the database."""
        self.stop_showing()
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        self._shown.clear()

    def follow(self, handle: JobHandle, ticket: JobTicket, message: JobMessage | None) -> JobTicket:
        task = asyncio.create_task(self._follow(handle, ticket, message), name=f"job-{handle.job_id}")
        self._tasks[handle.job_id] = task
        if message is not None:
            self._shown[handle.job_id] = message
        task.add_done_callback(lambda done: self._follower_ended(handle.job_id, ticket, done))
        return ticket

    def _follower_ended(self, job_id: int, ticket: JobTicket, task: asyncio.Task[None]) -> None:
        """However a follower ends (even cancelled before it ran), its job loses it as an owner and
        whoever still listens to its ticket stops (after a final event the marker stays unread)."""
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]
            self._shown.pop(job_id, None)
        ticket._events.put_nowait(None)

    async def _follow(self, handle: JobHandle, ticket: JobTicket, message: JobMessage | None) -> None:
        """The one owner of a job while it is unfinished: record each event, show it on the job's
        message, then pass it on. The database always knows at least what the user saw. Recording is
        retried while it fails (a database busy for a while), so the follower does not die and leave
        its job without an owner; after RECORD_TRIES the event is given up (logged), and an unfinished
        job is left to the watchdog, which hands it to the pool again."""
        if message is not None:
            await self._show(message, ticket, None)
        async for event in handle.events():
            forwarded = await self._record_with_retries(handle.job_id, ticket.spec, event, message)
            if forwarded is None:
                continue
            if message is not None:
                await self._show(message, ticket, forwarded)
            if ticket.listened or isinstance(forwarded, FINAL_EVENTS):
                ticket._events.put_nowait(forwarded)

    async def _show(self, message: JobMessage, ticket: JobTicket, event: TicketEvent | None) -> None:
        """Show an event (None: the job was accepted) on the job's message; a message that cannot be
        changed (Discord unreachable) is logged and does not stop the job."""
        try:
            if event is None:
                await message.accepted(ticket)
            elif isinstance(event, Queued | Started | Progress):
                await message.progress(event)
            elif isinstance(event, Failed | Cancelled):
                posted = await message.end(event)
                if posted is not None and self.privacy is not None:  # /forget deletes it too
                    job = await _get_job(self.sessions, ticket.job_id)
                    await self.privacy.record_posted(
                        user_id=ticket.owner_id,
                        job_id=ticket.job_id,
                        channel_id=job.channel_id if job else None,
                        message_id=posted,
                    )
        except Exception:
            log.exception("job %d: showing %s failed", ticket.job_id, type(event).__name__)

    async def _record_with_retries(
        self, job_id: int, spec: JobSpec, event: Event, message: JobMessage | None
    ) -> TicketEvent | None:
        for tries in range(1, RECORD_TRIES + 1):
            try:
                return await self._record(job_id, spec, event, message)
            except Exception:
                log.exception(
                    "job %d: recording %s failed (try %d of %d)",
                    job_id,
                    type(event).__name__,
                    tries,
                    RECORD_TRIES,
                )
                if tries < RECORD_TRIES:
                    await asyncio.sleep(min(2.0**tries, 30.0))
        return None

    async def _record(
        self, job_id: int, spec: JobSpec, event: Event, message: JobMessage | None
    ) -> TicketEvent:
        """What an event changes in the database (and Discord, for a result); the event to pass on."""
        if isinstance(event, Started):
            await retry_when_busy(lambda: self._mark_running(job_id), what=f"job {job_id} started")
            self._started_at[job_id] = time.monotonic()
        elif isinstance(event, Done):
            stored = await store_result(self.sessions, self.files, job_id, spec, event.output)
            self._count(job_id, spec, JobState.DONE if isinstance(stored, Finished) else JobState.FAILED)
            await self._after_final(job_id, spec, succeeded=isinstance(stored, Finished))  # before "done"
            if isinstance(stored, Finished) and (failure := await self.deliver_or_log(job_id, message)):
                return Failed(failure)
            return stored
        elif isinstance(event, Failed | Cancelled):
            state = JobState.FAILED if isinstance(event, Failed) else JobState.CANCELLED
            await finish(self.sessions, job_id, state, event.reason if isinstance(event, Failed) else None)
            self._count(job_id, spec, state)
            await self._after_final(job_id, spec, succeeded=False)
        return event

    def _count(self, job_id: int, spec: JobSpec, state: JobState) -> None:
        """For /metrics: how the job ended, and how long it ran if this process saw it start."""
        JOBS_FINISHED.labels(spec.kind, state.value).inc()
        started = self._started_at.pop(job_id, None)
        if started is not None and state == JobState.DONE:
            JOB_SECONDS.labels(spec.kind).observe(time.monotonic() - started)

    async def _mark_running(self, job_id: int) -> None:
        async with write_transaction(self.sessions) as session:
            await job_store.mark_running(session, job_id)

    async def _after_final(self, job_id: int, spec: JobSpec, *, succeeded: bool) -> None:
        """Files the job was the last to need go (a training's photos, a refused import's file)."""
        if done_with := spec.files_done_with(succeeded=succeeded):
            await self._discard(done_with, job_id)

    async def deliver_unposted(self, message_for: Callable[[int], JobMessage | None]) -> None:
        """Post every stored result not recorded as posted whose job nobody here follows. deliver_once
        looks in Discord first where a posting was begun, so none is posted twice."""
        async with self.sessions() as session:
            undelivered = await job_store.undelivered_jobs(session)
        for job in undelivered:
            if job.id not in self:
                await self.deliver_or_log(job.id, message_for(job.id))

    async def deliver_or_log(self, job_id: int, message: JobMessage | None) -> str | None:
        """Post the result; None, or why it never can be (then the job is failed with that reason)."""
        if message is None:
            return None
        try:
            await deliver_once(self.sessions, job_id, message)
        except (StoredFileMissing, StoredFileDamaged) as error:  # retrying would not bring it back
            reason = f"the result could not be posted: {error}"
            await finish(self.sessions, job_id, JobState.FAILED, reason, after=JobState.DONE)
            return reason
        except Exception:  # the result is stored; the next start posts it
            log.exception("job %d: posting the result failed; it will be posted on the next start", job_id)
        return None
