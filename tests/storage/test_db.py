"""Write units under contention: they take the write lock up front, so a read-then-write never fails
with "database is locked" because another writer committed in between (NOTES.md, SQLite in WAL)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import repositories as repo
from storage.db import write_transaction
from storage.models import User

pytestmark = pytest.mark.both_databases


async def _read_then_write(sessions: async_sessionmaker[AsyncSession], pause: float) -> None:
    async with write_transaction(sessions) as session:
        count = await session.scalar(select(func.count()).select_from(User))
        await asyncio.sleep(pause)  # another writer commits meanwhile (or waits for us)
        await session.execute(update(User).where(User.id == 1).values(jobs_submitted=User.jobs_submitted + 1))
        assert count == 1


async def test_two_read_then_write_units_at_once_both_succeed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with write_transaction(sessions) as session:
        await repo.ensure_user(session, 1)
    slow = asyncio.create_task(_read_then_write(sessions, 0.3))
    await asyncio.sleep(0.1)  # the slow one has read; now a quick one reads and writes
    await _read_then_write(sessions, 0.0)
    await slow
    async with sessions() as session:
        user = await session.get(User, 1)
    assert user is not None and user.jobs_submitted == 2
