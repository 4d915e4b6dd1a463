"""Deleting a user's data: which files their rows name, whether anyone else still uses a file, and
removing the rows themselves. Files are content-addressed and may be shared (two users uploading
the same picture), so a file goes only when no row of anyone names it any more."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.jobs import dialect_insert
from storage.models import Adapter, ImageRecord, Job, PostedMessage, User

SHA256_RE = re.compile(r"\b[0-9a-f]{64}\b")


@dataclass(frozen=True)
class UserData:
    jobs: int
    images: int
    adapters: int
    files: frozenset[str]  # every file their rows name (photos, sources, results, adapters)
    train_job_ids: tuple[int, ...]
    messages: tuple[tuple[int, int], ...]  # (channel, message) of every message the bot posted for them


def hashes_in(text: str) -> set[str]:
    """Every file-store name in a spec's JSON (sources, masks, control pictures, photos, adapters)."""
    return set(SHA256_RE.findall(text))


async def user_data(session: AsyncSession, user_id: int) -> UserData:
    columns = (Job.id, Job.kind, Job.spec_json, Job.channel_id, Job.message_id)
    jobs = (await session.execute(select(*columns).where(Job.owner_id == user_id))).all()
    images = (
        await session.scalars(select(ImageRecord.file_hash).where(ImageRecord.owner_id == user_id))
    ).all()
    adapters = (await session.scalars(select(Adapter.file_hash).where(Adapter.owner_id == user_id))).all()
    files = set(images) | set(adapters)
    for job in jobs:
        files |= hashes_in(job.spec_json)
    train_jobs = tuple(job.id for job in jobs if job.kind == "train")
    messages = {(job.channel_id, job.message_id) for job in jobs if job.channel_id and job.message_id}
    posted = await session.execute(
        select(PostedMessage.channel_id, PostedMessage.message_id).where(_posted_for_or_about(user_id))
    )
    messages |= {(row.channel_id, row.message_id) for row in posted}
    return UserData(
        len(jobs), len(images), len(adapters), frozenset(files), train_jobs, tuple(sorted(messages))
    )


def _posted_for_or_about(user_id: int) -> ColumnElement[bool]:
    """Messages posted for the user, or showing one of their jobs (a U press by someone else)."""
    mine = select(Job.id).where(Job.owner_id == user_id)
    return or_(PostedMessage.user_id == user_id, PostedMessage.job_id.in_(mine))


async def record_posted(
    session: AsyncSession, *, user_id: int, job_id: int | None, channel_id: int, message_id: int
) -> None:
    """Remember a message posted for `user_id` (once: the same message may be reported twice)."""
    insert = dialect_insert(session)
    values = {"user_id": user_id, "job_id": job_id, "channel_id": channel_id, "message_id": message_id}
    await session.execute(
        insert(PostedMessage).values(**values).on_conflict_do_nothing(index_elements=["message_id"])
    )


async def job_message(session: AsyncSession, job: Job) -> int | None:
    """The job's own message (its interaction's reply, posted for its owner), if one was recorded."""
    query = select(func.min(PostedMessage.message_id)).where(
        PostedMessage.job_id == job.id, PostedMessage.user_id == job.owner_id
    )
    return await session.scalar(query)


async def lock_user(session: AsyncSession, user_id: int) -> None:
    """Lock the user's row for the rest of the transaction (PostgreSQL; SQLite's write lock covers it):
    a forget and a submit of the same user run one after the other."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())


async def delete_user_rows(session: AsyncSession, user_id: int) -> None:
    """Every row of the user: images, adapters, jobs, the user (with their saved defaults), and the
    records of messages posted for them or about their jobs."""
    mine = select(Job.id).where(Job.owner_id == user_id)
    await session.execute(delete(PostedMessage).where(_posted_for_or_about(user_id)))
    # Other people's jobs made from theirs (a V press on their grid) lose the link, not their rows.
    await session.execute(
        update(Job).where(Job.parent_job_id.in_(mine), Job.owner_id != user_id).values(parent_job_id=None)
    )
    await session.execute(delete(ImageRecord).where(ImageRecord.owner_id == user_id))
    await session.execute(delete(Adapter).where(Adapter.owner_id == user_id))
    await session.execute(update(Job).where(Job.owner_id == user_id).values(parent_job_id=None))
    await session.execute(delete(Job).where(Job.owner_id == user_id))
    await session.execute(delete(User).where(User.id == user_id))


async def delete_job_rows(
    session: AsyncSession, job: Job
) -> tuple[frozenset[str], tuple[tuple[int, int], ...]]:
    """One job's rows (its images, the records of messages showing it, the job); the files they named
    and the (channel, message) of those messages. Jobs others made from it keep their rows and files."""
    images = set(await session.scalars(select(ImageRecord.file_hash).where(ImageRecord.job_id == job.id)))
    shown = (await session.execute(
        select(PostedMessage.channel_id, PostedMessage.message_id).where(PostedMessage.job_id == job.id)
    )).all()  # fmt: skip
    await session.execute(delete(PostedMessage).where(PostedMessage.job_id == job.id))
    await session.execute(update(Job).where(Job.parent_job_id == job.id).values(parent_job_id=None))
    await session.execute(delete(ImageRecord).where(ImageRecord.job_id == job.id))
    await session.execute(delete(Job).where(Job.id == job.id))
    messages = tuple((int(channel), int(message)) for channel, message in shown)
    return frozenset(images | hashes_in(job.spec_json)), messages


async def referenced_files(session: AsyncSession) -> set[str]:
    """Every file any row names: jobs' specs (sources, masks, photos, adapters), images, adapters."""
    found: set[str] = set()
    for spec_json in await session.scalars(select(Job.spec_json)):
        found |= hashes_in(spec_json)
    found.update(await session.scalars(select(ImageRecord.file_hash)))
    found.update(await session.scalars(select(Adapter.file_hash)))
    return found


async def files_in_use(
    session: AsyncSession, digests: Iterable[str], *, except_job: int | None = None
) -> set[str]:
    """Which of `digests` some remaining row still names (a job other than `except_job` counts)."""
    used = set()
    for digest in digests:
        jobs = select(func.count()).select_from(Job).where(Job.spec_json.contains(digest))
        if except_job is not None:
            jobs = jobs.where(Job.id != except_job)
        images = select(func.count()).select_from(ImageRecord).where(ImageRecord.file_hash == digest)
        adapters = select(func.count()).select_from(Adapter).where(Adapter.file_hash == digest)
        if any([await session.scalar(query) for query in (jobs, images, adapters)]):
            used.add(digest)
    return used
