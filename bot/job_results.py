"""A finished job's result: stored with the job's final state in one transaction, then posted once.

Posting records an intent before sending; a job that has an intent but no message id (the process
stopped in between) first asks Discord whether the result arrived, so a restart never posts twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.job_stats import stats_json, with_upload
from bot.tickets import Finished, JobMessage, TokenTaken
from generation.events import Failed
from generation.outputs import AdapterOutput, JobOutput
from generation.specs import ImportSpec, JobSpec, TrainSpec
from storage import jobs as job_store
from storage import library
from storage.db import retry_when_busy, write_transaction
from storage.files import FileStore
from storage.jobs import StoredImage
from storage.models import AdapterKind, Job, JobState
from storage.privacy import job_message

log = logging.getLogger(__name__)


async def store_files(files: FileStore, blobs: Sequence[bytes]) -> list[str]:
    """Put files in the file store off the event loop; their sha256 names, in order."""
    return await asyncio.to_thread(lambda: [files.put(blob) for blob in blobs])


async def images_of(sessions: async_sessionmaker[AsyncSession], job_id: int) -> list[StoredImage]:
    async with sessions() as session:
        records = await job_store.job_images(session, job_id)
    return [StoredImage.of(record) for record in records]


async def store_result(
    sessions: async_sessionmaker[AsyncSession],
    files: FileStore,
    job_id: int,
    spec: JobSpec,
    output: JobOutput,
) -> Finished | Failed:
    """Files first, then the final state, images and library entry in one transaction: a job is done
    with all of it, or not. A training whose name was taken meanwhile fails instead (TokenTaken)."""
    hashes = await store_files(files, [image.png for image in output.images])
    adapter_hash = (await store_files(files, [output.adapter.safetensors]))[0] if output.adapter else None
    flags = output.nsfw or (False,) * len(output.images)
    images = tuple(
        StoredImage(index, image.seed, digest, image.width, image.height, flagged)
        for index, (image, digest, flagged) in enumerate(zip(output.images, hashes, flags, strict=True))
    )

    async def record() -> bool:
        async with write_transaction(sessions) as session:
            if not await job_store.finish_job(session, job_id, JobState.DONE):
                return False
            job = await job_store.get_job(session, job_id)
            assert job is not None
            await job_store.record_gpu_time(session, job, output.elapsed_s)
            job.stats_json = stats_json(output)
            job.texts_json = json.dumps(output.texts) if output.texts else None
            await job_store.add_images(session, job, images)
            await _add_to_library(session, job, spec, output.adapter, adapter_hash)
        return True

    try:
        if not await retry_when_busy(record, what=f"job {job_id}'s result"):
            log.warning("job %d finished twice; keeping the first result", job_id)
    except TokenTaken as error:
        await finish(sessions, job_id, JobState.FAILED, str(error))
        return Failed(str(error))
    return Finished(images=images, output=output)


async def _add_to_library(
    session: AsyncSession, job: Job, spec: JobSpec, trained: AdapterOutput | None, trained_hash: str | None
) -> None:
    """A finished training or import becomes a private library entry of the job's owner."""
    tags = ""
    if isinstance(spec, TrainSpec) and trained is not None and trained_hash is not None:
        name, kind, file_hash, trigger = spec.token, trained.kind, trained_hash, trained.trigger
    elif isinstance(spec, ImportSpec):
        name, kind, file_hash, trigger = spec.name, spec.adapter_kind, spec.file, spec.trigger
        tags = spec.tags
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
        tags=tags,
    )


async def deliver_once(sessions: async_sessionmaker[AsyncSession], job_id: int, message: JobMessage) -> None:
    """Post a finished job's result through its message once: a job that records a message id is
    never posted again, and one with an intent but no id is looked for in Discord first."""
    async with sessions() as session:
        job = await job_store.get_job(session, job_id)
        assert job is not None
        if job.message_id is not None or job.channel_id is None:
            return
        origin = await job_message(session, job)
    message_id = None
    if job.delivery_started_at is not None:
        message_id = await message.find_delivered(job, origin, job.delivery_started_at)
        if message_id is not None:
            log.info("job %d: its result was already in Discord (message %d)", job_id, message_id)
    if message_id is None:

        async def intend() -> None:
            async with write_transaction(sessions) as session:
                await job_store.record_delivery_intent(session, job_id)

        await retry_when_busy(intend, what=f"job {job_id}'s delivery")
        posting = time.perf_counter()
        message_id = await message.deliver(job, await images_of(sessions, job_id), origin)
        upload_s: float | None = time.perf_counter() - posting
    else:
        upload_s = None  # found already posted: no upload happened now
    if message_id is not None:
        found = message_id

        async def record() -> None:
            async with write_transaction(sessions) as session:
                await job_store.record_message(session, job_id, found)
                if upload_s is not None:
                    posted = await job_store.get_job(session, job_id)
                    assert posted is not None
                    posted.stats_json = with_upload(posted.stats_json, upload_s)

        await retry_when_busy(record, what=f"job {job_id}'s message")


async def finish(
    sessions: async_sessionmaker[AsyncSession],
    job_id: int,
    state: JobState,
    error: str | None = None,
    *,
    after: JobState | None = None,
) -> None:
    """End the job in `state` (`after`: only if it is in that final state now, e.g. DONE → FAILED)."""

    async def write() -> None:
        async with write_transaction(sessions) as session:
            await job_store.finish_job(session, job_id, state, error, only_from=after)

    await retry_when_busy(write, what=f"job {job_id} {state.value}")
