"""The database: an async SQLAlchemy engine (SQLite in WAL mode by default) and Alembic migrations."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
T = TypeVar("T")
BUSY_ATTEMPTS = 6  # with the 5 s busy timeout of each, about half a minute of contention in all
# PostgreSQL's "could not serialize", "deadlock detected" and "lock not available": safe to run again.
_RETRYABLE_PGCODES = {"40001", "40P01", "55P03"}


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


WRITE_OPTION = "dreamcord_write"  # execution option that marks a connection's transaction as a write


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL (readers never block the writer), foreign keys, a busy timeout,
    and transactions begun by us, so that a write unit can take the write lock up front."""
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")  # first: switching to WAL waits for other writers too
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # The driver would issue a deferred BEGIN only before the first write; we issue our own (below).
    connection.isolation_level = None


def _sqlite_begin(connection: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with "database is locked" when
    # another writer committed in between (the busy timeout does not cover that upgrade, NOTES.md):
    # write units take the lock when they begin, and wait for it up to the busy timeout.
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@asynccontextmanager
async def write_transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work that writes: committed at the end, rolled back on error, and on SQLite holding the
    write lock from its first statement (`BEGIN IMMEDIATE`), so what it read cannot change under it."""
    async with sessions.begin() as session:
        await session.connection(execution_options={WRITE_OPTION: True})
        yield session


class DatabaseBusy(Exception):
    """Write units kept failing because the database was locked: worth trying again later."""


def is_busy(error: BaseException) -> bool:
    """Whether `error` says another writer held the database (a retry may succeed), not a real fault."""
    if not isinstance(error, DBAPIError):
        return False
    if "database is locked" in str(error.orig) or "database table is locked" in str(error.orig):
        return True
    return (
        getattr(error.orig, "sqlstate", None) in _RETRYABLE_PGCODES
        or getattr(error.orig, "pgcode", None) in _RETRYABLE_PGCODES
    )


async def retry_when_busy(
    work: Callable[[], Awaitable[T]], *, what: str, attempts: int = BUSY_ATTEMPTS, first_delay: float = 0.05
) -> T:
    """Run a unit of work (which opens its own transaction) again while the database answers "busy",
    with exponential backoff and jitter; DatabaseBusy once `attempts` are used up."""
    delay, attempt = first_delay, 1
    while True:
        try:
            return await work()
        except DBAPIError as error:
            if not is_busy(error):
                raise
            if attempt >= attempts:
                raise DatabaseBusy(f"{what}: the database stayed busy after {attempts} tries") from error
            log.warning("%s: database busy (try %d of %d); retrying", what, attempt, attempts)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay, attempt = min(delay * 2, 2.0), attempt + 1


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def sync_url(url: str) -> str:
    """Alembic runs synchronously: the same database through the plain driver."""
    parsed = make_url(url)
    driver = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg"}.get(parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False) if driver else url


def current_revision(url: str) -> str | None:
    """The migration the database is at (None: empty, never upgraded)."""
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine as create_sync_engine

    engine = create_sync_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
    if make_url(url).get_backend_name() == "sqlite":
        # WAL is a property of the file, set once here: switching to it later, from a connection the
        # bot opens while another holds the write lock, fails at once (it does not wait).
        from sqlalchemy import create_engine as create_sync_engine

        engine = create_sync_engine(sync_url(url))
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        finally:
            engine.dispose()


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    """Upgrade from async code (the bot on start) without blocking the event loop."""
    await asyncio.to_thread(upgrade, url, revision)
