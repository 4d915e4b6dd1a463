"""The job service: joins the database, the worker pool and whoever shows results (Discord, tests).

Accepted means persisted: `submit` commits the job row before it returns, and only then does the
caller tell the user "queued". On start, jobs a previous process left queued or running are handed
to the pool again, so a restart loses nothing; each job reaches a final state once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.admin import check_may_submit, runs_relaxed
from bot.privacy import PrivacyService
from bot.visibility import Viewer, may_manage, may_see, not_visible
from generation.errors import DreamcordError
from generation.outputs import AdapterOutput, JobOutput
from generation.pool import Cancelled, Done, Event, Failed, JobHandle, QueueFull, Started, WorkerPool
from generation.specs import (
    ImagineSpec,
    ImportSpec,
    JobSpec,
    OutpaintSpec,
    PromptedSpec,
    TrainSpec,
    UpscaleSpec,
    VarySpec,
    spec_from_json,
)
from storage import admin as admin_store
from storage import library
from storage import repositories as repo
from storage.db import write_transaction
from storage.files import FileStore
from storage.models import AdapterKind, Job, JobState
from storage.privacy import job_message, lock_user, record_posted

log = logging.getLogger(__name__)
PromptedSpecT = TypeVar("PromptedSpecT", bound=PromptedSpec)
DerivedSpec = VarySpec | OutpaintSpec | UpscaleSpec  # jobs that start from a stored picture


class JobNotFound(DreamcordError):
    """No such job, or not one the asker may touch."""


class UnknownToken(DreamcordError):
    """A `<token>` in a prompt that is not in the user's library (the message lists theirs)."""


class TokenTaken(DreamcordError):
    """A training would give the user a second token of the same name."""


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


class ResultSink(Protocol):
    """Shows finished jobs to their owner (the Discord front end); returns the message id it posted."""

    async def deliver(
        self, job: Job, images: Sequence[StoredImage], origin_message_id: int | None = None
    ) -> int | None: ...


@dataclass
class JobTicket:
    """A job the service accepted: its id, and its events after the service has recorded them."""

    job_id: int
    owner_id: int
    spec: JobSpec
    relax: bool = False  # the owner's Fast time is used up: it runs when no Fast job waits
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
            if isinstance(event, Finished | Failed | Cancelled):
                return

    async def wait(self) -> TicketEvent:
        """The final event: Finished, Failed or Cancelled."""
        events = [event async for event in self.events()]
        return events[-1]


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
        self._followers: dict[int, asyncio.Task[None]] = {}

    async def start(self) -> list[JobTicket]:
        """Post results a previous process stored but never posted, and hand every job it left
        queued or running to the pool again."""
        async with self.sessions() as session:
            leftovers = await repo.unfinished_jobs(session)
            undelivered = await repo.undelivered_jobs(session) if self.sink else []
        for job in undelivered:
            await self._deliver_or_log(job.id)
        tickets = []
        for job in leftovers:
            log.info("job %d: resuming (%s, %d attempts so far)", job.id, job.state, job.attempts)
            tickets.append(self._hand_to_pool(job.id, job.owner_id, spec_from_json(job.spec_json), job.relax))
        return tickets

    async def close(self) -> None:
        """Stop following jobs; whatever is unfinished stays queued/running in the database."""
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
        self.pool.check_capacity(owner_id)
        if self.privacy is not None:  # a job asked for while the user's /forget runs is refused…
            self.privacy.refuse_while_forgetting(owner_id)
        async with write_transaction(self.sessions) as session:
            if self.privacy is not None:  # …and asked again under the write lock: none slips in between
                self.privacy.refuse_while_forgetting(owner_id)
                await lock_user(session, owner_id)
            prompt = spec.prompt if isinstance(spec, PromptedSpec) else ""
            await check_may_submit(session, owner_id, guild_id, self.pool.config.max_queued_per_user, prompt)
            spec = await self._prepare(session, spec, owner_id, guild_id)
            relax = await runs_relaxed(session, owner_id, guild_id)
            job = await repo.create_job(
                session,
                owner_id=owner_id,
                kind=spec.kind,
                spec_json=spec.to_json(),
                guild_id=guild_id,
                channel_id=channel_id,
                parent_job_id=parent_job_id,
                relax=relax,
            )
            if channel_id is not None and message_id is not None:
                await record_posted(
                    session, user_id=owner_id, job_id=job.id, channel_id=channel_id, message_id=message_id
                )
        try:
            return self._hand_to_pool(job.id, owner_id, spec, relax)
        except QueueFull as error:  # another submit won the last place while we were writing
            await self._finish(job.id, JobState.FAILED, str(error))
            raise

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

    def _hand_to_pool(self, job_id: int, owner_id: int, spec: JobSpec, relax: bool = False) -> JobTicket:
        handle = self.pool.submit(job_id, spec, owner_id=owner_id, relax=relax)
        ticket = JobTicket(job_id=job_id, owner_id=owner_id, spec=spec, relax=relax)
        self._followers[job_id] = asyncio.create_task(self._follow(handle, ticket), name=f"job-{job_id}")
        return ticket

    async def _follow(self, handle: JobHandle, ticket: JobTicket) -> None:
        """Record each event, then pass it on: the database always knows at least what the user saw."""
        try:
            async for event in handle.events():
                forwarded: TicketEvent = event
                if isinstance(event, Started):
                    async with write_transaction(self.sessions) as session:
                        await repo.mark_running(session, handle.job_id)
                elif isinstance(event, Done):
                    forwarded = await self._store_result(handle.job_id, event.output)
                    await self._after_final(handle.job_id, ticket.spec)  # before the user hears "done"
                    if isinstance(forwarded, Finished):
                        await self._deliver_or_log(handle.job_id)
                elif isinstance(event, Failed):
                    await self._finish(handle.job_id, JobState.FAILED, event.reason)
                    await self._after_final(handle.job_id, ticket.spec)
                elif isinstance(event, Cancelled):
                    await self._finish(handle.job_id, JobState.CANCELLED)
                    await self._after_final(handle.job_id, ticket.spec)
                ticket._events.put_nowait(forwarded)
        finally:
            self._followers.pop(handle.job_id, None)
            ticket._events.put_nowait(None)  # whoever still listens stops (after a final event: unread)

    async def _after_final(self, job_id: int, spec: JobSpec) -> None:
        """However a training ends, its photos go (unless the user kept them)."""
        if isinstance(spec, TrainSpec) and self.privacy is not None:
            await self.privacy.discard_training_photos(job_id, spec)

    async def _store_result(self, job_id: int, output: JobOutput) -> Finished | Failed:
        hashes = await self.store_files([image.png for image in output.images])
        adapter_hash = (await self.store_files([output.adapter.safetensors]))[0] if output.adapter else None
        flags = output.nsfw or (False,) * len(output.images)
        images = tuple(
            StoredImage(index, image.seed, digest, image.width, image.height, flagged)
            for index, (image, digest, flagged) in enumerate(zip(output.images, hashes, flags, strict=True))
        )
        try:
            async with write_transaction(self.sessions) as session:
                # Final state, images and adapter in one transaction: a job is done with all of it, or not.
                if not await repo.finish_job(session, job_id, JobState.DONE):
                    log.warning("job %d finished twice; keeping the first result", job_id)
                    return Finished(images=images, output=output)
                job = await repo.get_job(session, job_id)
                assert job is not None
                await repo.record_gpu_time(session, job, output.elapsed_s)
                await repo.add_images(
                    session,
                    job,
                    [repo.NewImage(i.index, i.seed, i.file_hash, i.width, i.height, i.nsfw) for i in images],
                )
                await self._add_to_library(session, job, output.adapter, adapter_hash)
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

    async def _deliver_or_log(self, job_id: int) -> None:
        try:
            await self._deliver(job_id)
        except Exception:  # the result is stored; the next start posts it
            log.exception("job %d: posting the result failed; it will be posted on the next start", job_id)

    async def _deliver(self, job_id: int) -> None:
        """Post a finished job's result once: a job that records a message id is never posted again."""
        if self.sink is None:
            return
        job = await self.get_job(job_id)
        assert job is not None
        if job.message_id is not None or job.channel_id is None:
            return
        async with self.sessions() as session:
            origin = await job_message(session, job)
        message_id = await self.sink.deliver(job, await self.images_of(job_id), origin)
        if message_id is not None:
            async with write_transaction(self.sessions) as session:
                await repo.record_message(session, job_id, message_id)

    async def _finish(self, job_id: int, state: JobState, error: str | None = None) -> None:
        async with write_transaction(self.sessions) as session:
            await repo.finish_job(session, job_id, state, error)


async def resolve_adapters(
    session: AsyncSession, spec: PromptedSpecT, owner_id: int, guild_id: int | None
) -> PromptedSpecT:
    """Fill each `<name>` of the spec with the file, kind and trigger of the adapter it means here."""
    resolved = []
    for ref in spec.adapters:
        adapter = await library.usable_adapter(session, owner_id, ref.name, guild_id)
        if adapter is None:
            raise UnknownToken(await _unknown_token_message(session, ref.name, owner_id, guild_id))
        if adapter.base_model != spec.model:
            raise UnknownToken(
                f"<{ref.name}> was made for model {adapter.base_model!r}, not {spec.model!r}; "
                f"add --model {adapter.base_model} or pick another token"
            )
        resolved.append(
            ref.model_copy(
                update={
                    "kind": adapter.kind.value,
                    "file": adapter.file_hash,
                    "trigger": adapter.trigger_words,
                }
            )
        )
    return spec.model_copy(update={"adapters": tuple(resolved)})


async def _unknown_token_message(
    session: AsyncSession, name: str, owner_id: int, guild_id: int | None
) -> str:
    names = sorted({f"<{a.name}>" for a in await library.visible_adapters(session, owner_id, guild_id)})
    if not names:
        return f"<{name}> is not in your library, which is empty: train a token with /train first"
    return f"<{name}> is not in your library; your tokens here: {', '.join(names)}"
