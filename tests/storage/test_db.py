"""Write units under contention: they take the write lock up front, so a read-then-write never fails
with "database is locked" because another writer committed in between (NOTES.md, SQLite in WAL)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import jobs as job_store
from storage.db import DatabaseBusy, retry_when_busy, write_transaction
from storage.models import User


async def _read_then_write(sessions: async_sessionmaker[AsyncSession], pause: float) -> None:
    async with write_transaction(sessions) as session:
        count = await session.scalar(select(func.count()).select_from(User))
        await asyncio.sleep(pause)  # another writer commits meanwhile (or waits for us)
        await session.execute(update(User).where(User.id == 1).values(jobs_submitted=User.jobs_submitted + 1))
        assert count == 1


@pytest.mark.both_databases
async def test_two_read_then_write_units_at_once_both_succeed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with write_transaction(sessions) as session:
        await job_store.ensure_user(session, 1)
    slow = asyncio.create_task(_read_then_write(sessions, 0.3))
    await asyncio.sleep(0.1)  # the slow one has read; now a quick one reads and writes
    await _read_then_write(sessions, 0.0)
    await slow
    async with sessions() as session:
        user = await session.get(User, 1)
    assert user is not None and user.jobs_submitted == 2


def _locked() -> OperationalError:
    return OperationalError("INSERT …", {}, sqlite3.OperationalError("database is locked"))


async def test_busy_work_is_retried_until_it_goes_through() -> None:
    failures = [_locked(), _locked()]

    async def work() -> str:
        if failures:
            raise failures.pop()
        return "stored"

    assert await retry_when_busy(work, what="a test", first_delay=0.001) == "stored"


async def test_work_that_stays_busy_ends_in_database_busy_and_other_errors_pass_at_once() -> None:
    calls = 0

    async def always_locked() -> None:
        nonlocal calls
        calls += 1
        raise _locked()

    with pytest.raises(DatabaseBusy, match="stayed busy after 3 tries"):
        await retry_when_busy(always_locked, what="a test", attempts=3, first_delay=0.001)
    assert calls == 3

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise OperationalError("SELECT …", {}, sqlite3.OperationalError("no such table: jobs"))

    calls = 0
    with pytest.raises(OperationalError):
        await retry_when_busy(broken, what="a test", first_delay=0.001)
    assert calls == 1
