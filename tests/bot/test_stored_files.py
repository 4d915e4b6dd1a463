"""The job service and a file store it cannot trust: damaged sources, vanished results, and files
nobody refers to any more."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
from pathlib import Path

from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.file_sweeper import sweep
from bot.jobs import Finished, JobService
from generation.config import ModelConfig
from generation.pool.worker import WorkerSettings
from generation.pool.workers import Failed, PoolConfig, WorkerPool
from generation.prompt import parse_prompt
from generation.specs import ImagineSpec, imagine_spec, vary_spec
from storage.files import FileStore
from storage.models import Job, JobState
from tests.bot.results_only import ResultsOnly


def _spec(config: ModelConfig, seed: int) -> ImagineSpec:
    return imagine_spec(parse_prompt(f"a blue square --seed {seed} --steps 2"), config, 64)


def _pool(config: ModelConfig, data_dir: Path) -> WorkerPool:
    worker = WorkerSettings(
        models={"tiny": config}, data_dir=str(data_dir), device="cpu", threads=2, log_level=logging.WARNING
    )
    return WorkerPool(PoolConfig(worker=worker, interactive_devices=("cpu",)))


class _ReadingSink(ResultsOnly):
    """Posts like the Discord sink does: it reads every picture from the store first."""

    def __init__(self, files: FileStore, fail_first: bool = False) -> None:
        self.files, self.fail_first, self.posted = files, fail_first, list[int]()

    async def deliver(self, job: Job, images: list, origin_message_id: int | None = None) -> int | None:  # type: ignore[type-arg]
        if self.fail_first:
            self.fail_first = False
            raise ConnectionError("Discord is unreachable")
        for image in images:
            await asyncio.to_thread(self.files.read, image.file_hash)
        self.posted.append(job.id)
        return 1000 + job.id

    async def find_delivered(self, job: Job, origin_message_id: int | None, since: object) -> int | None:
        return None


async def test_a_result_whose_file_vanished_fails_with_a_reason_instead_of_waiting_forever(
    sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    files = FileStore(tmp_path / "files")
    pool = _pool(tiny_config, tmp_path)
    await pool.start()
    try:
        first = JobService(sessions, pool, files, messages=_ReadingSink(files, fail_first=True))
        ticket = await first.submit(owner_id=1, spec=_spec(tiny_config, 1), channel_id=7)
        final = await asyncio.wait_for(ticket.wait(), 60)
        assert isinstance(final, Finished)  # stored, not posted (Discord was down)
        files.path(final.images[2].file_hash).unlink()  # then a picture is lost

        sink = _ReadingSink(files)
        await JobService(sessions, pool, files, messages=sink).start(watch_every_s=None, sweep_every_s=None)
        job = await first.get_job(ticket.job_id)
        assert job is not None and job.state == JobState.FAILED and job.message_id is None
        assert job.error is not None and "is missing" in job.error
        await JobService(sessions, pool, files, messages=sink).start(watch_every_s=None, sweep_every_s=None)
        assert sink.posted == []  # not tried again at every start
    finally:
        await pool.close()


async def test_a_damaged_source_picture_fails_the_job_saying_so(
    sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    files = FileStore(tmp_path / "files")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, "PNG")
    source = files.put(buffer.getvalue())
    other = io.BytesIO()
    Image.new("RGB", (64, 64), "blue").save(other, "PNG")
    files.path(source).write_bytes(other.getvalue())  # replaced behind the store's back
    pool = _pool(tiny_config, tmp_path)
    await pool.start()
    try:
        service = JobService(sessions, pool, files)
        spec = vary_spec(_spec(tiny_config, 3), source, (64, 64), 64, 0.5)
        ticket = await service.submit(owner_id=1, spec=spec)
        final = await asyncio.wait_for(ticket.wait(), 60)
        assert isinstance(final, Failed) and "is damaged" in final.reason, final
    finally:
        await pool.close()


async def test_the_sweeper_removes_old_files_nobody_names_and_keeps_the_rest(
    sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    files = FileStore(tmp_path / "files")
    service = JobService(sessions, _pool(tiny_config, tmp_path), files)  # the pool never starts
    named = files.put(b"a source some job names")
    spec = vary_spec(_spec(tiny_config, 4), named, (64, 64), 64, 0.5)
    await service.submit(owner_id=1, spec=spec)
    orphan, recent = files.put(b"an upload whose command failed"), files.put(b"an upload in progress")
    hours_ago = time.time() - 3 * 3600
    for digest in (named, orphan):
        os.utime(files.path(digest), (hours_ago, hours_ago))
    assert await sweep(sessions, files) == 1
    assert (files.exists(named), files.exists(orphan), files.exists(recent)) == (True, False, True)
    await service.close()
