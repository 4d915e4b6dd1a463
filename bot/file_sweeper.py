"""Stored files nobody refers to: removed at once when a job that named them is refused, and by a
periodic sweep otherwise (uploads of a command that failed before its job was stored, files left by a
crash). Files are content-addressed and shared, so a file goes only when no row names it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.files import FileStore
from storage.privacy import files_in_use, referenced_files

log = logging.getLogger(__name__)

SWEEP_GRACE_S = 3600.0  # a file stored (or stored again) this recently may belong to a job being made
SWEEP_EVERY_S = 3600.0


async def discard_unused(
    sessions: async_sessionmaker[AsyncSession],
    files: FileStore,
    digests: Iterable[str],
    *,
    except_job: int | None = None,
    keep: Iterable[str] = (),
) -> int:
    """Delete those of `digests` that no row (other than `except_job`'s) names and that are not in
    `keep` (files another submission in flight is about to name); how many went."""
    candidates = set(digests) - set(keep)
    if not candidates:
        return 0
    async with sessions() as session:
        in_use = await files_in_use(session, candidates, except_job=except_job)
    unused = sorted(candidates - in_use)
    return sum(await asyncio.to_thread(lambda: [files.delete(digest) for digest in unused]))


async def sweep(
    sessions: async_sessionmaker[AsyncSession], files: FileStore, *, grace_s: float = SWEEP_GRACE_S
) -> int:
    """Delete every stored file older than `grace_s` that no row names; how many went."""
    candidates = await asyncio.to_thread(lambda: set(files.older_than(grace_s)))
    if not candidates:
        return 0
    async with sessions() as session:
        referenced = await referenced_files(session)
    unused = sorted(candidates - referenced)
    removed = sum(await asyncio.to_thread(lambda: [files.delete(digest) for digest in unused]))
    if removed:
        log.info("file sweep: removed %d stored file(s) that nothing refers to", removed)
    return removed


async def sweep_forever(
    sessions: async_sessionmaker[AsyncSession], files: FileStore, every_s: float = SWEEP_EVERY_S
) -> None:
    while True:
        try:
            await sweep(sessions, files)
        except Exception:  # the next round tries again
            log.exception("the file sweep failed")
        await asyncio.sleep(every_s)
