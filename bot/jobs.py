"""The job service: joins the database, the worker pool and whoever shows results (Discord, tests).

Accepted means persisted: `submit` commits the job row before it returns, and only then does the
caller tell the user "queued". On start, jobs a previous process left queued or running are handed
to the pool again, so a restart loses nothing; each job reaches a final state once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Coroutine, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.adapter_refs import resolve_adapters
from bot.admin import check_may_submit, refuse_turbo_in_relax, runs_relaxed
from bot.file_sweeper import SWEEP_EVERY_S, discard_unused, sweep_forever
from bot.job_follower import JobFollowers
from bot.job_results import finish, images_of, store_files
from bot.metrics import JOBS_SUBMITTED
from bot.privacy import PrivacyService
from bot.tickets import (
    Busy,
    Finished,
    JobMessage,
    JobMessages,
    JobNotFound,
    JobTicket,
    Restarting,
    TicketEvent,
    TokenTaken,
    UnknownToken,
)
from bot.visibility import Viewer, may_manage, may_see, not_visible
from generation.errors import DreamcordError, excerpt
from generation.models.checkpoint_facts import family_of, known_family, operation_refusal
from generation.models.family_facts import FamilyFacts
from generation.pool.workers import PoolLoad, QueueFull, WorkerPool
from generation.specs import JobSpec, PromptedSpec, spec_files, spec_from_json
from storage import admin as admin_store
from storage import jobs as job_store
from storage import library
from storage.db import DatabaseBusy, retry_when_busy, write_transaction
from storage.files import FileStore
from storage.jobs import StoredImage
from storage.models import Job, JobState
from storage.privacy import lock_user, record_posted

__all__ = [  # the service's own types live in bot.tickets; callers may import them from here
    "Busy",
    "Finished",
    "JobMessage",
    "JobMessages",
    "JobNotFound",
    "JobService",
    "JobTicket",
    "Restarting",
    "StoredImage",
    "TicketEvent",
    "TokenTaken",
    "UnknownToken",
    "resolve_adapters",
]
log = logging.getLogger(__name__)
WATCH_EVERY_S = 30.0  # how often the watchdog looks for jobs nobody follows


def too_many_attempts(attempts: int) -> str:
    return (
        f"it was started {attempts} times without finishing (a worker crash or a restart each time), "
        "so it is not tried again; submit it once more if you want it"
    )


async def _all(awaitables: Sequence[Coroutine[Any, Any, object]]) -> None:
    await asyncio.gather(*awaitables)


class JobService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        pool: WorkerPool,
        files: FileStore,
        messages: JobMessages | None = None,
        privacy: PrivacyService | None = None,
    ) -> None:
        self.sessions = sessions
        self.privacy = privacy
        self.pool = pool
        self.files = files
        self.messages = messages  # None: jobs are shown to nobody (tests, benchmarks)
        self.followers = JobFollowers(sessions, files, privacy, self._discard_quietly)
        self._submitting: set[int] = set()  # stored, not handed to the pool yet: not orphans
        self._files_in_flight: Counter[str] = Counter()  # named by submissions not stored yet
        self._background: list[asyncio.Task[None]] = []  # the watchdog and the file sweeper
        self.accepting = True  # False once the process is stopping: submissions are refused

    async def start(
        self, *, watch_every_s: float | None = WATCH_EVERY_S, sweep_every_s: float | None = SWEEP_EVERY_S
    ) -> list[JobTicket]:
        """Post results a previous process stored but never posted, hand every job it left queued or
        running to the pool again, and start the watchdog (every `watch_every_s`) and the sweeper of
        unreferenced files (every `sweep_every_s`; None: not started)."""
        if self.messages:  # results stored but never posted
            await self.followers.deliver_unposted(self._message_for)
        tickets = await self.adopt_orphans()
        # Each model's family, read once off the loop, so result buttons can leave out what it lacks.
        learning = [self._family_of(name) for name in self.pool.config.worker.models]
        self._background.append(asyncio.create_task(_all(learning), name="model-families"))
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
            leftovers = await job_store.unfinished_jobs(session)
        tickets = []
        for job in leftovers:
            if job.id in self.followers or job.id in self._submitting:
                continue
            current = await self.get_job(job.id)  # its follower may have finished it meanwhile
            if current is None or current.state.finished or job.id in self.followers:
                continue
            handle = self.pool.handle_of(job.id)
            if handle is not None:
                log.warning("job %d: its follower was gone; following it again", job.id)
                ticket = JobTicket(job.id, job.owner_id, handle.spec, listened=False)
                tickets.append(self.followers.follow(handle, ticket, self._message_for(job.id)))
            elif job.attempts >= self.pool.config.max_attempts:
                log.warning("job %d: started %d times without finishing; not again", job.id, job.attempts)
                await finish(self.sessions, job.id, JobState.FAILED, too_many_attempts(job.attempts))
            else:
                log.info("job %d: resuming (%s, %d attempts so far)", job.id, job.state, job.attempts)
                spec = spec_from_json(job.spec_json)
                ticket = JobTicket(job.id, job.owner_id, spec, job.relax, listened=False)
                message = self._message_for(job.id)
                tickets.append(self._hand_to_pool(ticket, message, job.spec_json, attempts=job.attempts))
        return tickets  # nobody reads their progress (listened=False): only their final event is kept

    async def _watch(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.adopt_orphans()
                if self.messages:  # a posting that failed (Discord down, the database locked)
                    await self.followers.deliver_unposted(self._message_for)
            except Exception:  # the next round tries again; the watchdog itself never stops
                log.exception("the job watchdog's round failed")

    def stop_showing(self) -> None:
        """Every job's message stops changing (the bot is closing); the jobs resume on the next start."""
        self.followers.stop_showing()

    async def drain(self, grace_s: float) -> list[int]:
        """Stop: refuse new jobs, start no queued ones, and give the running ones up to `grace_s` to
        finish and be posted. The ids of those still running then (they resume on the next start)."""
        self.accepting = False
        self.pool.hold_queued()
        running = [self.followers.task_of(job_id) for job_id in self.pool.running_job_ids()]
        followers = [task for task in running if task is not None]
        if followers and grace_s > 0:
            log.info("letting %d running job(s) finish (up to %g s)", len(followers), grace_s)
            await asyncio.wait(followers, timeout=grace_s)
        await self.followers.interrupt()  # the queued ones and any still running: "paused"
        return self.pool.running_job_ids()

    async def close(self) -> None:
        """Stop following jobs; whatever is unfinished stays queued/running in the database."""
        for task in self._background:
            task.cancel()
        await self.followers.close()

    async def submit(
        self,
        *,
        owner_id: int,
        spec: JobSpec,
        guild_id: int | None = None,
        channel_id: int | None = None,
        parent_job_id: int | None = None,
        message_id: int | None = None,
        message: JobMessage | None = None,
    ) -> JobTicket:
        """Persist the job, then queue it. Raises QueueFull, Banned or QuotaExceeded (nothing persisted).
        `message_id` is the job's own Discord message, if it has one already (remembered for /forget);
        `message` shows the job from now on (None: one the service makes, which posts only the end).

        `<token>`s in an imagine prompt are resolved against the user's library here, so the stored spec
        names the exact files it used; an unknown token raises UnknownToken and nothing is stored.
        """
        files = spec_files(spec)
        self._files_in_flight.update(files)
        refused = True
        try:
            ticket = await self._submit(
                owner_id, spec, guild_id, channel_id, parent_job_id, message_id, message
            )
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
        message: JobMessage | None,
    ) -> JobTicket:
        if not self.accepting:
            raise Restarting()
        self.pool.check_capacity(owner_id)
        family = await self._family_of(spec.model)
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
                prepared = await self._prepare(session, spec, owner_id, guild_id, family)
                relax = await runs_relaxed(session, owner_id, guild_id)
                refuse_turbo_in_relax(prepared, relax)
                job = await job_store.create_job(
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
            ticket = JobTicket(job_id=job.id, owner_id=owner_id, spec=spec, relax=relax)
            handed = self._hand_to_pool(ticket, message or self._message_for(job.id), job.spec_json)
            JOBS_SUBMITTED.labels(spec.kind).inc()
            return handed
        except QueueFull as error:  # another submit won the last place while we were writing
            await finish(self.sessions, job.id, JobState.FAILED, str(error))
            raise
        finally:
            self._submitting.discard(job.id)

    async def cancel(self, job_id: int, viewer: Viewer) -> None:
        """Cancel a queued or running job the viewer may manage (theirs; an admin: any made in their server)."""
        async with self.sessions() as session:
            job = await job_store.get_job(session, job_id)
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
            await finish(self.sessions, job_id, JobState.CANCELLED)  # not in the pool (e.g. before a resume)

    async def visible_job(self, job_id: int, viewer: Viewer) -> Job:
        """A finished job the viewer may see (bot.visibility's rule), or JobNotVisible; the same words
        whether it does not exist, is someone else's elsewhere or has no result yet."""
        job = await self.get_job(job_id)
        if job is None or job.state != JobState.DONE or not may_see(job, viewer):
            raise not_visible(job_id)
        return job

    async def get_job(self, job_id: int) -> Job | None:
        async with self.sessions() as session:
            return await job_store.get_job(session, job_id)

    async def active_jobs_of(self, owner_id: int) -> list[Job]:
        async with self.sessions() as session:
            return list(await job_store.jobs_of(session, owner_id, [JobState.QUEUED, JobState.RUNNING]))

    async def images_of(self, job_id: int) -> list[StoredImage]:
        return await images_of(self.sessions, job_id)

    async def store_files(self, blobs: Sequence[bytes]) -> list[str]:
        """Put files (e.g. prepared training photos) in the file store; their sha256 names, in order."""
        return await store_files(self.files, blobs)

    def queue_position(self, job_id: int) -> int | None:
        """The job's place in its queue now; None when it runs or is not in the pool."""
        return self.pool.queue_position(job_id)

    def load(self) -> PoolLoad:
        """How busy the workers are right now (for /info)."""
        return self.pool.load()

    def check_capacity(self, owner_id: int) -> None:
        """Raise QueueFull now if the user (or everyone) has as many jobs waiting as allowed (before a defer)."""
        self.pool.check_capacity(owner_id)

    async def check_operation(self, spec: JobSpec, family: FamilyFacts | None = None) -> None:
        """Raise if the spec's model cannot do what it needs: at submit, and before an interaction
        is deferred (an image prompt on a model without an IP-Adapter: before its download)."""
        config = self.pool.config.worker.models.get(spec.model)
        family = family or await self._family_of(spec.model)
        if config is not None and (refusal := operation_refusal(config, family, spec.needs())):
            raise DreamcordError(refusal)

    # ------------------------------------------------------------ internals
    async def _family_of(self, model: str) -> FamilyFacts | None:
        """The family of a configured model, read from its checkpoint's files (cached after the first
        time); None when they cannot be read now (the worker says why when it loads the model)."""
        config = self.pool.config.worker.models.get(model)
        if config is None:
            return None
        if (known := known_family(config)) is not None:  # read before: no thread hop per submit
            return known
        try:
            return await asyncio.to_thread(family_of, config)
        except DreamcordError:
            return None
        except Exception as error:  # a damaged model_index.json, the hub unreachable: not the user's job
            log.warning("model %s: its family could not be read (%s)", model, excerpt(str(error), 120))
            return None

    async def _prepare(
        self,
        session: AsyncSession,
        spec: JobSpec,
        owner_id: int,
        guild_id: int | None,
        family: FamilyFacts | None,
    ) -> JobSpec:
        """Name the exact files of the spec's `<token>`s (as they are now), then check what the job
        needs of its model, that every file it reads is stored and that its library name is free."""
        if isinstance(spec, PromptedSpec) and spec.adapters:
            spec = await resolve_adapters(session, spec, owner_id, guild_id)
        await self.check_operation(spec, family)
        if missing := [digest for digest in spec.files() if not self.files.exists(digest)]:
            raise DreamcordError(
                f"{len(missing)} of the pictures or files this job starts from are no longer stored"
            )
        name = spec.library_name()
        if name is not None and await library.owned_adapter(session, owner_id, name) is not None:
            raise TokenTaken(f"you already have <{name}>; pick another name or delete it with /library")
        return spec

    def _message_for(self, job_id: int) -> JobMessage | None:
        return self.messages.for_job(job_id) if self.messages is not None else None

    def _hand_to_pool(
        self, ticket: JobTicket, message: JobMessage | None, spec_json: str, attempts: int = 0
    ) -> JobTicket:
        """The spec goes down as the JSON stored for it: serialised once, on the way in."""
        handle = self.pool.submit(
            ticket.job_id,
            ticket.spec,
            owner_id=ticket.owner_id,
            relax=ticket.relax,
            attempts=attempts,
            spec_json=spec_json,
        )
        return self.followers.follow(handle, ticket, message)

    async def _discard_quietly(self, digests: Sequence[str], except_job: int | None = None) -> None:
        """Remove files unless a row (other than `except_job`'s) or a submission in flight names them."""
        try:
            await discard_unused(
                self.sessions, self.files, digests, except_job=except_job, keep=+self._files_in_flight
            )
        except Exception:  # the sweeper removes them later
            log.exception("could not remove the files of a refused job")
