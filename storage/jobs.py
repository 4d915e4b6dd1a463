"""Queries, one small function each, taking the session and (for user data) the owner.

They return model objects; callers own the unit of work (`async with session.begin():`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ImageRecord, Job, JobState, User, utcnow

_DIALECT_INSERTS = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


def dialect_insert(session: AsyncSession) -> Any:
    """The session's dialect's INSERT, which knows ON CONFLICT DO NOTHING (SQLite and PostgreSQL)."""
    return _DIALECT_INSERTS[session.get_bind().dialect.name]


@dataclass(frozen=True)
class StoredImage:
    """A result picture as the job service and Discord see it: in the file store, with its row's facts."""

    index: int
    seed: int | None
    file_hash: str
    width: int
    height: int
    nsfw: bool = False  # the safety checker flagged it: shown only where the channel allows it

    @classmethod
    def of(cls, record: ImageRecord) -> StoredImage:
        return cls(record.index, record.seed, record.file_hash, record.width, record.height, record.nsfw)


async def ensure_user(session: AsyncSession, user_id: int) -> User:
    """The user's row, created on first sight; safe when two requests of a new user race."""
    await session.execute(
        dialect_insert(session)(User).values(id=user_id).on_conflict_do_nothing(index_elements=["id"])
    )
    user = await session.get(User, user_id)
    assert user is not None
    return user


async def create_job(
    session: AsyncSession,
    *,
    owner_id: int,
    kind: str,
    spec_json: str,
    guild_id: int | None = None,
    channel_id: int | None = None,
    parent_job_id: int | None = None,
    relax: bool = False,
) -> Job:
    """Insert a queued job (and its owner, first time seen); the id is assigned on return."""
    await ensure_user(session, owner_id)
    await session.execute(
        update(User).where(User.id == owner_id).values(jobs_submitted=User.jobs_submitted + 1)
    )
    job = Job(
        owner_id=owner_id,
        kind=kind,
        spec_json=spec_json,
        guild_id=guild_id,
        channel_id=channel_id,
        parent_job_id=parent_job_id,
        relax=relax,
        state=JobState.QUEUED,
        attempts=0,
    )
    session.add(job)
    await session.flush()
    return job


async def get_job(session: AsyncSession, job_id: int) -> Job | None:
    return await session.get(Job, job_id)


async def unfinished_jobs(session: AsyncSession) -> Sequence[Job]:
    """Jobs a previous process left queued or running, oldest first."""
    result = await session.scalars(
        select(Job).where(Job.state.in_([JobState.QUEUED, JobState.RUNNING])).order_by(Job.created_at, Job.id)
    )
    return result.all()


async def undelivered_jobs(session: AsyncSession) -> Sequence[Job]:
    """Done jobs that have somewhere to be posted but no message yet (the process stopped in between)."""
    result = await session.scalars(
        select(Job)
        .where(Job.state == JobState.DONE, Job.message_id.is_(None), Job.channel_id.is_not(None))
        .order_by(Job.id)
    )
    return result.all()


async def mark_running(session: AsyncSession, job_id: int) -> None:
    await session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(state=JobState.RUNNING, attempts=Job.attempts + 1, started_at=utcnow())
    )


async def finish_job(
    session: AsyncSession,
    job_id: int,
    state: JobState,
    error: str | None = None,
    *,
    only_from: JobState | None = None,
) -> bool:
    """Move a job to a final state; False if it was already finished (each job finishes once).
    `only_from`: a final state the job may be moved out of (a DONE job whose result cannot be posted)."""
    current = [only_from] if only_from is not None else [JobState.QUEUED, JobState.RUNNING]
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(current))
        .values(state=state, error=error, finished_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def record_message(session: AsyncSession, job_id: int, message_id: int) -> None:
    await session.execute(update(Job).where(Job.id == job_id).values(message_id=message_id))


async def record_delivery_intent(session: AsyncSession, job_id: int) -> datetime:
    """The result is about to be sent: from now on, a restart asks Discord before sending it again."""
    now = utcnow()
    await session.execute(update(Job).where(Job.id == job_id).values(delivery_started_at=now))
    return now


async def record_gpu_time(session: AsyncSession, job: Job, seconds: float) -> None:
    """The worker's measured time of a job, on the job (for Fast allowances) and the user's total."""
    job.gpu_seconds = seconds
    await session.execute(
        update(User).where(User.id == job.owner_id).values(gpu_seconds=User.gpu_seconds + seconds)
    )


async def add_images(session: AsyncSession, job: Job, images: Sequence[StoredImage]) -> list[ImageRecord]:
    records = [
        ImageRecord(
            job_id=job.id,
            owner_id=job.owner_id,
            index=image.index,
            seed=image.seed,
            file_hash=image.file_hash,
            width=image.width,
            height=image.height,
            nsfw=image.nsfw,
        )
        for image in images
    ]
    session.add_all(records)
    await session.flush()
    return records


async def job_images(session: AsyncSession, job_id: int) -> Sequence[ImageRecord]:
    result = await session.scalars(
        select(ImageRecord).where(ImageRecord.job_id == job_id).order_by(ImageRecord.index)
    )
    return result.all()


async def jobs_of(session: AsyncSession, owner_id: int, states: Sequence[JobState]) -> Sequence[Job]:
    result = await session.scalars(
        select(Job).where(Job.owner_id == owner_id, Job.state.in_(states)).order_by(Job.created_at, Job.id)
    )
    return result.all()
