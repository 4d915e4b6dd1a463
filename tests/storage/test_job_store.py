from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import jobs as job_store
from storage.models import Adapter, AdapterKind, JobState

pytestmark = pytest.mark.both_databases


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(
    sessions: async_sessionmaker[AsyncSession], db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's own settings")
    async with sessions() as session:
        assert (await session.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await session.execute(text("PRAGMA foreign_keys"))).scalar() == 1


async def test_job_lifecycle_finishes_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        job = await job_store.create_job(session, owner_id=42, kind="imagine", spec_json="{}")
    async with sessions.begin() as session:
        await job_store.mark_running(session, job.id)
        assert await job_store.finish_job(session, job.id, JobState.DONE)
        assert not await job_store.finish_job(session, job.id, JobState.FAILED, "late")
    async with sessions() as session:
        stored = await job_store.get_job(session, job.id)
        assert stored is not None
        assert (stored.state, stored.attempts, stored.error) == (JobState.DONE, 1, None)
        assert stored.finished_at is not None


async def test_unfinished_jobs_are_oldest_first(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        ids = [
            (await job_store.create_job(session, owner_id=1, kind="imagine", spec_json="{}")).id
            for _ in range(3)
        ]
        await job_store.finish_job(session, ids[1], JobState.CANCELLED)
        await job_store.mark_running(session, ids[2])
    async with sessions() as session:
        assert [job.id for job in await job_store.unfinished_jobs(session)] == [ids[0], ids[2]]


async def test_images_belong_to_their_job_and_owner(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        job = await job_store.create_job(session, owner_id=7, kind="imagine", spec_json="{}")
        await job_store.add_images(
            session, job, [job_store.StoredImage(i, 100 + i, f"{i:064x}", 64, 64) for i in range(4)]
        )
    async with sessions() as session:
        images = await job_store.job_images(session, job.id)
        assert [(im.index, im.seed, im.owner_id) for im in images] == [(i, 100 + i, 7) for i in range(4)]


async def test_adapter_names_are_unique_per_owner_in_the_schema(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        await job_store.ensure_user(session, 1)
        await job_store.ensure_user(session, 2)
        for owner in (1, 2):  # two owners may each have <my-dog>
            session.add(
                Adapter(
                    owner_id=owner, kind=AdapterKind.LORA, name="my-dog", base_model="m", file_hash="0" * 64
                )
            )
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            session.add(
                Adapter(
                    owner_id=1, kind=AdapterKind.EMBEDDING, name="my-dog", base_model="m", file_hash="1" * 64
                )
            )


async def test_first_jobs_of_a_new_user_may_race(sessions: async_sessionmaker[AsyncSession]) -> None:
    import asyncio

    async def submit() -> int:
        async with sessions.begin() as session:
            return (await job_store.create_job(session, owner_id=99, kind="imagine", spec_json="{}")).id

    ids = await asyncio.gather(*(submit() for _ in range(5)))
    assert len(set(ids)) == 5
    async with sessions() as session:
        user = await job_store.ensure_user(session, 99)
        assert user.jobs_submitted == 5
