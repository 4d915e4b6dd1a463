"""The job service: joins the database, the worker pool and whoever shows results (Discord, tests).

Accepted means persisted: `submit` commits the job row before it returns, and only then does the
caller tell the user "queued". On start, jobs a previous process left queued or running are handed
to the pool again, so a restart loses nothing; each job reaches a final state once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.adapter_refs import resolve_adapters
from bot.admin import check_may_submit, runs_relaxed
from bot.file_sweeper import SWEEP_EVERY_S, discard_unused, sweep_forever
from bot.privacy import PrivacyService
from bot.tickets import (
    FINAL_EVENTS,
    Busy,
    Finished,
    JobNotFound,
    JobTicket,
    ResultSink,
    StoredImage,
    TicketEvent,
    TokenTaken,
    UnknownToken,
)
from bot.visibility import Viewer, may_manage, may_see, not_visible
from generation.errors import DreamcordError
from generation.events import Cancelled, Done, Event, Failed, Started
from generation.outputs import AdapterOutput, JobOutput
from generation.pool import JobHandle, QueueFull, WorkerPool
from generation.specs import (
    ImagineSpec,
    ImportSpec,
    JobSpec,
    OutpaintSpec,
    PromptedSpec,
    TrainSpec,
    UpscaleSpec,
    VarySpec,
    spec_files,
    spec_from_json,
)
from storage import admin as admin_store
from storage import library
from storage import repositories as repo
from storage.db import DatabaseBusy, retry_when_busy, write_transaction
from storage.files import FileStore, StoredFileDamaged, StoredFileMissing
from storage.models import AdapterKind, Job, JobState
from storage.privacy import job_message, lock_user, record_posted

__all__ = [  # the service's own types live in bot.tickets; callers may import them from here
    "Busy",
    "Finished",
    "JobNotFound",
    "JobService",
    "JobTicket",
    "ResultSink",
    "StoredImage",
    "TicketEvent",
    "TokenTaken",
    "UnknownToken",
    "resolve_adapters",
]
log = logging.getLogger(__name__)
WATCH_EVERY_S = 30.0  # how often the watchdog looks for jobs nobody follows
RECORD_TRIES = 8  # a follower's tries at recording one event (backing off up to 30 s between them)


def too_many_attempts(attempts: int) -> str:
    return (
        f"it was started {attempts} times without finishing (a worker crash or a restart each time), "
        "so it is not tried again; submit it once more if you want it"
    )


DerivedSpec = VarySpec | OutpaintSpec | UpscaleSpec  # jobs that start from a stored picture


class JobService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        pool: WorkerPool,
        files: FileStore,
        sink: ResultSink | None = None,
        privacy: PrivacyService | None = None,
    ) -> None:
        self.sessions = sessions
        self.privacy = privacy
        self.pool = pool
        self.files = files
        self.sink = sink
        self._followers: dict[int, asyncio.Task[None]] = {}  # one per job not in a final state
        self._submitting: set[int] = set()  # stored, not handed to the pool yet: not orphans
        self._files_in_flight: Counter[str] = Counter()  # named by submissions not stored yet
        self._background: list[asyncio.Task[None]] = []  # the watchdog and the file sweeper

    async def start(
        self, *, watch_every_s: float | None = WATCH_EVERY_S, sweep_every_s: float | None = SWEEP_EVERY_S
    ) -> list[JobTicket]:
        """Post results a previous process stored but never posted, hand every job it left queued or
        running to the pool again, and start the watchdog (every `watch_every_s`) and the sweeper of
        unreferenced files (every `sweep_every_s`; None: not started)."""
        async with self.sessions() as session:
            undelivered = await repo.undelivered_jobs(session) if self.sink else []
        for job in undelivered:
            await self._deliver_or_log(job.id)
        tickets = await self.adopt_orphans()
        if watch_every_s is not None:
            self._background.append(asyncio.create_task(self._watch(watch_every_s), name="job-watchdog"))
        if sweep_every_s is not None:
            sweeper = sweep_forever(self.sessions, self.files, sweep_every_s)
            self._background.append(asyncio.create_task(sweeper, name="file-sweeper"))
        return tickets

    async def adopt_orphans(self) -> list[JobTicket]:
        """Give every job the database holds as queued or running, and that nobody here follows, an
        owner again: its pool handle if the pool still runs it, else the pool anew. A job that was
        already started `max_attempts` times (counted in the database, across restarts) fails instead."""
        async with self.sessions() as session:
            leftovers = await repo.unfinished_jobs(session)
        tickets = []
        for job in leftovers:
            if job.id in self._followers or job.id in self._submitting:
                continue
            current = await self.get_job(job.id)  # its follower may have finished it meanwhile
            if current is None or current.state.finished or job.id in self._followers:
                continue
            handle = self.pool.handle_of(job.id)
            if handle is not None:
                log.warning("job %d: its follower was gone; following it again", job.id)
                tickets.append(self._follow_handle(handle, JobTicket(job.id, job.owner_id, handle.spec)))
            elif job.attempts >= self.pool.config.max_attempts:
                log.warning("job %d: started %d times without finishing; not again", job.id, job.attempts)
                await self._finish(job.id, JobState.FAILED, too_many_attempts(job.attempts))
            else:
                log.info("job %d: resuming (%s, %d attempts so far)", job.id, job.state, job.attempts)
                spec = spec_from_json(job.spec_json)
                tickets.append(
                    self._hand_to_pool(job.id, job.owner_id, spec, job.relax, attempts=job.attempts)
                )
        for ticket in tickets:
            ticket.listened = False  # nobody reads these tickets' progress: keep only their final event
        return tickets

    async def _watch(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.adopt_orphans()
            except Exception:  # the next round tries again; the watchdog itself never stops
                log.exception("the job watchdog's round failed")

    async def close(self) -> None:
        """Stop following jobs; whatever is unfinished stays queued/running in the database."""
        for task in self._background:
            task.cancel()
        for task in self._followers.values():
            task.cancel()
        await asyncio.gather(*self._followers.values(), return_exceptions=True)
        self._followers.clear()

    async def submit(
        self,
        *,
        owner_id: int,
        spec: JobSpec,
        guild_id: int | None = None,
        channel_id: int | None = None,
        parent_job_id: int | None = None,
        message_id: int | None = None,
    ) -> JobTicket:
        """Persist the job, then queue it. Raises QueueFull, Banned or QuotaExceeded (nothing persisted).
        `message_id` is the job's own Discord message, if it has one already (remembered for /forget).

        `<token>`s in an imagine prompt are resolved against the user's library here, so the stored spec
        names the exact files it used; an unknown token raises UnknownToken and nothing is stored.
        """
        files = spec_files(spec)
        self._files_in_flight.update(files)
        refused = True
        try:
            ticket = await self._submit(owner_id, spec, guild_id, channel_id, parent_job_id, message_id)
            refused = False
            return ticket
        finally:
            self._files_in_flight.subtract(files)
            self._files_in_flight = +self._files_in_flight  # no entry left behind per file
            if refused:  # the files stored for it go, unless a row or another submission names them
                await self._discard_quietly(files)

    async def _submit(
        self,
        owner_id: int,
        spec: JobSpec,
        guild_id: int | None,
        channel_id: int | None,
        parent_job_id: int | None,
        message_id: int | None,
    ) -> JobTicket:
        self.pool.check_capacity(owner_id)
        if self.privacy is not None:  # a job asked for while the user's /forget runs is refused…
            self.privacy.refuse_while_forgetting(owner_id)

        async def store() -> tuple[Job, JobSpec, bool]:
            async with write_transaction(self.sessions) as session:
                if self.privacy is not None:  # …and asked again under the write lock: none slips in
                    self.privacy.refuse_while_forgetting(owner_id)
                    await lock_user(session, owner_id)
                prompt = spec.prompt if isinstance(spec, PromptedSpec) else ""
                max_queued = self.pool.config.max_queued_per_user
                await check_may_submit(session, owner_id, guild_id, max_queued, prompt)
                prepared = await self._prepare(session, spec, owner_id, guild_id)
                relax = await runs_relaxed(session, owner_id, guild_id)
                job = await repo.create_job(
                    session,
                    owner_id=owner_id,
                    kind=prepared.kind,
                    spec_json=prepared.to_json(),
                    guild_id=guild_id,
                    channel_id=channel_id,
                    parent_job_id=parent_job_id,
                    relax=relax,
                )
                if channel_id is not None and message_id is not None:
                    await record_posted(
                        session, user_id=owner_id, job_id=job.id, channel_id=channel_id, message_id=message_id
                    )
                self._submitting.add(job.id)  # until it is in the pool: the watchdog leaves it alone
            return job, prepared, relax

        try:
            job, spec, relax = await retry_when_busy(store, what=f"a job of {owner_id}")
        except DatabaseBusy as error:
            log.error("%s", error)
            raise Busy("the bot is very busy right now; please try again in a moment") from None
        try:
            return self._hand_to_pool(job.id, owner_id, spec, relax)
        except QueueFull as error:  # another submit won the last place while we were writing
            await self._finish(job.id, JobState.FAILED, str(error))
            raise
        finally:
            self._submitting.discard(job.id)

    async def cancel(self, job_id: int, viewer: Viewer) -> None:
        """Cancel a queued or running job the viewer may manage (theirs; an admin: any made in their server)."""
        async with self.sessions() as session:
            job = await repo.get_job(session, job_id)
        if job is None or not may_manage(job, viewer):
            raise JobNotFound(f"job {job_id} is not one of yours")
        if job.state.finished:
            raise JobNotFound(f"job {job_id} has already {job.state.value}")
        if job.owner_id != viewer.user_id:  # an administrator acting on someone else's job says so
            async with write_transaction(self.sessions) as session:
                await admin_store.audit(
                    session, guild_id=job.guild_id, actor_id=viewer.user_id, action="cancel",
                    target=str(job.owner_id), detail=f"job {job_id}",
                )  # fmt: skip
        if not self.pool.cancel(job_id):
            await self._finish(job_id, JobState.CANCELLED)  # not in the pool (e.g. before a resume)

    async def visible_job(self, job_id: int, viewer: Viewer) -> Job:
        """A finished job the viewer may see (bot.visibility's rule), or JobNotVisible; the same words
        whether it does not exist, is someone else's elsewhere or has no result yet."""
        job = await self.get_job(job_id)
        if job is None or job.state != JobState.DONE or not may_see(job, viewer):
            raise not_visible(job_id)
        return job

    async def get_job(self, job_id: int) -> Job | None:
        async with self.sessions() as session:
            return await repo.get_job(session, job_id)

    async def active_jobs_of(self, owner_id: int) -> list[Job]:
        async with self.sessions() as session:
            return list(await repo.jobs_of(session, owner_id, [JobState.QUEUED, JobState.RUNNING]))

    async def images_of(self, job_id: int) -> list[StoredImage]:
        async with self.sessions() as session:
            records = await repo.job_images(session, job_id)
        return [StoredImage(r.index, r.seed, r.file_hash, r.width, r.height, r.nsfw) for r in records]

    async def store_files(self, blobs: Sequence[bytes]) -> list[str]:
        """Put files (e.g. prepared training photos) in the file store; their sha256 names, in order."""
        return await asyncio.to_thread(lambda: [self.files.put(blob) for blob in blobs])

    # ------------------------------------------------------------ internals
    async def _prepare(
        self, session: AsyncSession, spec: JobSpec, owner_id: int, guild_id: int | None
    ) -> JobSpec:
        if isinstance(spec, ImagineSpec) and spec.control and not self.files.exists(spec.control.image):
            raise DreamcordError("the control picture is no longer stored")
        if isinstance(spec, DerivedSpec):
            stored = (spec.source, spec.mask) if isinstance(spec, VarySpec) else (spec.source,)
            if not all(self.files.exists(digest) for digest in stored if digest is not None):
                raise DreamcordError("the picture (or mask) this job starts from is no longer stored")
        if isinstance(spec, PromptedSpec) and spec.adapters:
            return await resolve_adapters(session, spec, owner_id, guild_id)
        if isinstance(spec, TrainSpec | ImportSpec):
            name = spec.token if isinstance(spec, TrainSpec) else spec.name
            if await library.owned_adapter(session, owner_id, name) is not None:
                raise TokenTaken(f"you already have <{name}>; pick another name or delete it with /library")
            needed = spec.images if isinstance(spec, TrainSpec) else (spec.file,)
            missing = [digest for digest in needed if not self.files.exists(digest)]
            if missing:
                raise DreamcordError(f"{len(missing)} of the job's files are not in the file store")
        return spec

    def _hand_to_pool(
        self, job_id: int, owner_id: int, spec: JobSpec, relax: bool = False, attempts: int = 0
    ) -> JobTicket:
        handle = self.pool.submit(job_id, spec, owner_id=owner_id, relax=relax, attempts=attempts)
        return self._follow_handle(
            handle, JobTicket(job_id=job_id, owner_id=owner_id, spec=spec, relax=relax)
        )

    def _follow_handle(self, handle: JobHandle, ticket: JobTicket) -> JobTicket:
        task = asyncio.create_task(self._follow(handle, ticket), name=f"job-{handle.job_id}")
        self._followers[handle.job_id] = task
        task.add_done_callback(lambda done: self._follower_ended(handle.job_id, ticket, done))
        return ticket

    def _follower_ended(self, job_id: int, ticket: JobTicket, task: asyncio.Task[None]) -> None:
        """However a follower ends (even cancelled before it ran), its job loses it as an owner and
        whoever still listens to its ticket stops (after a final event the marker stays unread)."""
        if self._followers.get(job_id) is task:
            del self._followers[job_id]
        ticket._events.put_nowait(None)

    async def _follow(self, handle: JobHandle, ticket: JobTicket) -> None:
        """Record each event, then pass it on: the database always knows at least what the user saw.
        Recording is retried while it fails (a database busy for a while), so the follower does not
        die and leave its job without an owner; after RECORD_TRIES the event is given up (logged), and
        an unfinished job is left to the watchdog, which hands it to the pool again."""
        async for event in handle.events():
            forwarded = await self._record_with_retries(handle.job_id, ticket.spec, event)
            if forwarded is not None and (ticket.listened or isinstance(forwarded, FINAL_EVENTS)):
                ticket._events.put_nowait(forwarded)

    async def _record_with_retries(self, job_id: int, spec: JobSpec, event: Event) -> TicketEvent | None:
        for tries in range(1, RECORD_TRIES + 1):
            try:
                return await self._record(job_id, spec, event)
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

    async def _record(self, job_id: int, spec: JobSpec, event: Event) -> TicketEvent:
        """What an event changes in the database (and Discord, for a result); the event to pass on."""
        if isinstance(event, Started):
            await retry_when_busy(lambda: self._mark_running(job_id), what=f"job {job_id} started")
        elif isinstance(event, Done):
            stored = await self._store_result(job_id, event.output)
            await self._after_final(job_id, spec, succeeded=isinstance(stored, Finished))  # before "done"
            if isinstance(stored, Finished) and (failure := await self._deliver_or_log(job_id)):
                return Failed(failure)
            return stored
        elif isinstance(event, Failed | Cancelled):
            state = JobState.FAILED if isinstance(event, Failed) else JobState.CANCELLED
            await self._finish(job_id, state, event.reason if isinstance(event, Failed) else None)
            await self._after_final(job_id, spec, succeeded=False)
        return event

    async def _mark_running(self, job_id: int) -> None:
        async with write_transaction(self.sessions) as session:
            await repo.mark_running(session, job_id)

    async def _after_final(self, job_id: int, spec: JobSpec, *, succeeded: bool) -> None:
        """However a training ends, its photos go (unless the user kept them); a refused import's file
        goes (unless another row names it)."""
        if isinstance(spec, TrainSpec) and self.privacy is not None:
            await self.privacy.discard_training_photos(job_id, spec)
        if isinstance(spec, ImportSpec) and not succeeded:
            await self._discard_quietly([spec.file], except_job=job_id)

    async def _store_result(self, job_id: int, output: JobOutput) -> Finished | Failed:
        hashes = await self.store_files([image.png for image in output.images])
        adapter_hash = (await self.store_files([output.adapter.safetensors]))[0] if output.adapter else None
        flags = output.nsfw or (False,) * len(output.images)
        images = tuple(
            StoredImage(index, image.seed, digest, image.width, image.height, flagged)
            for index, (image, digest, flagged) in enumerate(zip(output.images, hashes, flags, strict=True))
        )

        async def record() -> bool:
            async with write_transaction(self.sessions) as session:
                # Final state, images and adapter in one transaction: a job is done with all of it, or not.
                if not await repo.finish_job(session, job_id, JobState.DONE):
                    return False
                job = await repo.get_job(session, job_id)
                assert job is not None
                await repo.record_gpu_time(session, job, output.elapsed_s)
                await repo.add_images(
                    session,
                    job,
                    [repo.NewImage(i.index, i.seed, i.file_hash, i.width, i.height, i.nsfw) for i in images],
                )
                await self._add_to_library(session, job, output.adapter, adapter_hash)
            return True

        try:
            if not await retry_when_busy(record, what=f"job {job_id}'s result"):
                log.warning("job %d finished twice; keeping the first result", job_id)
        except TokenTaken as error:
            await self._finish(job_id, JobState.FAILED, str(error))
            return Failed(str(error))
        return Finished(images=images, output=output)

    async def _add_to_library(
        self, session: AsyncSession, job: Job, trained: AdapterOutput | None, trained_hash: str | None
    ) -> None:
        """A finished training or import becomes a private library entry of the job's owner."""
        spec = spec_from_json(job.spec_json)
        if isinstance(spec, TrainSpec) and trained is not None and trained_hash is not None:
            name, kind, file_hash, trigger = spec.token, trained.kind, trained_hash, trained.trigger
        elif isinstance(spec, ImportSpec):
            name, kind, file_hash, trigger = spec.name, spec.adapter_kind, spec.file, spec.trigger
        else:
            return
        if await library.owned_adapter(session, job.owner_id, name) is not None:
            raise TokenTaken(f"you created another <{name}> while this job ran; nothing was saved")
        await library.add_adapter(
            session,
            owner_id=job.owner_id,
            kind=AdapterKind(kind),
            name=name,
            base_model=spec.model,
            file_hash=file_hash,
            trigger_words=trigger,
        )

    async def _deliver_or_log(self, job_id: int) -> str | None:
        """Post the result; None, or why it never can be (then the job is failed with that reason)."""
        try:
            await self._deliver(job_id)
        except (StoredFileMissing, StoredFileDamaged) as error:  # retrying would not bring it back
            reason = f"the result could not be posted: {error}"
            await self._finish(job_id, JobState.FAILED, reason, after=JobState.DONE)
            return reason
        except Exception:  # the result is stored; the next start posts it
            log.exception("job %d: posting the result failed; it will be posted on the next start", job_id)
        return None

    async def _deliver(self, job_id: int) -> None:
        """Post a finished job's result once. The intent is recorded before sending; a job that has an
        intent but no message id (the process stopped in between) first asks Discord whether the result
        arrived; a job that records a message id is never posted again."""
        if self.sink is None:
            return
        job = await self.get_job(job_id)
        assert job is not None
        if job.message_id is not None or job.channel_id is None:
            return
        async with self.sessions() as session:
            origin = await job_message(session, job)
        message_id = None
        if job.delivery_started_at is not None:
            message_id = await self.sink.find_delivered(job, origin, job.delivery_started_at)
            if message_id is not None:
                log.info("job %d: its result was already in Discord (message %d)", job_id, message_id)
        if message_id is None:

            async def intend() -> None:
                async with write_transaction(self.sessions) as session:
                    await repo.record_delivery_intent(session, job_id)

            await retry_when_busy(intend, what=f"job {job_id}'s delivery")
            message_id = await self.sink.deliver(job, await self.images_of(job_id), origin)
        if message_id is not None:

            async def record() -> None:
                async with write_transaction(self.sessions) as session:
                    await repo.record_message(session, job_id, message_id)

            await retry_when_busy(record, what=f"job {job_id}'s message")

    async def _discard_quietly(self, digests: Sequence[str], except_job: int | None = None) -> None:
        try:
            await discard_unused(
                self.sessions, self.files, digests, except_job=except_job, keep=+self._files_in_flight
            )
        except Exception:  # the sweeper removes them later
            log.exception("could not remove the files of a refused job")

    async def _finish(
        self, job_id: int, state: JobState, error: str | None = None, *, after: JobState | None = None
    ) -> None:
        """End the job in `state` (`after`: only if it is in that final state now, e.g. DONE → FAILED)."""

        async def finish() -> None:
            async with write_transaction(self.sessions) as session:
                await repo.finish_job(session, job_id, state, error, only_from=after)

        await retry_when_busy(finish, what=f"job {job_id} {state.value}")
