"""The job service on a real SQLite file, real file store and real worker processes (tiny model)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.jobs import Finished, JobNotFound, JobService
from bot.visibility import Viewer
from generation.config import ModelConfig, RayOptions
from generation.pool.worker import WorkerSettings
from generation.pool.workers import Cancelled, PoolConfig, QueueFull, Started, WorkerPool
from generation.prompt import parse_prompt
from generation.specs import ImagineSpec, imagine_spec
from storage import jobs as job_store
from storage.files import FileStore
from storage.models import ImageRecord, Job, JobState
from tests.bot.results_only import ResultsOnly


def _spec(config: ModelConfig, seed: int, steps: int = 2) -> ImagineSpec:
    return imagine_spec(parse_prompt(f"a red circle --seed {seed} --steps {steps}"), config, 64)


def _pool(config: ModelConfig, backend: str = "local", **changes: object) -> WorkerPool:
    worker = WorkerSettings(models={"tiny": config}, device="cpu", threads=2, log_level=logging.WARNING)
    defaults = {"worker": worker, "interactive_devices": ("cpu",), "backend": backend, "ray": RayOptions()}
    return WorkerPool(PoolConfig(**{**defaults, **changes}))  # type: ignore[arg-type]


async def _jobs(sessions: async_sessionmaker[AsyncSession]) -> list[Job]:
    async with sessions() as session:
        return list((await session.scalars(select(Job).order_by(Job.id))).all())


@pytest.mark.both_databases
async def test_accepted_job_is_persisted_before_submit_returns(
    sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    pool = _pool(tiny_config)  # not started: nothing can run, so what we see is what submit wrote
    service = JobService(sessions, pool, FileStore(tmp_path / "files"))
    ticket = await service.submit(owner_id=9, spec=_spec(tiny_config, 1), channel_id=55)
    async with sessions() as session:  # a separate session: the row is committed
        job = await session.get(Job, ticket.job_id)
    assert job is not None and (job.state, job.owner_id, job.channel_id) == (JobState.QUEUED, 9, 55)
    assert job.spec_json == ticket.spec.to_json()
    await service.close()


@pytest.mark.both_databases
async def test_finished_job_has_its_images_stored_once(
    sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    files = FileStore(tmp_path / "files")
    pool = _pool(tiny_config)
    await pool.start()
    service = JobService(sessions, pool, files)
    try:
        ticket = await service.submit(owner_id=1, spec=_spec(tiny_config, 5))
        final = await asyncio.wait_for(ticket.wait(), 60)
        assert isinstance(final, Finished)
        assert [image.seed for image in final.images] == [5, 6, 7, 8]
        assert all(
            files.read(image.file_hash) == out.png
            for image, out in zip(final.images, final.output.images, strict=True)
        )
        job = await service.get_job(ticket.job_id)
        assert job is not None and job.state == JobState.DONE and job.attempts == 1
    finally:
        await service.close()
        await pool.close()


@pytest.mark.parametrize("backend", ["local", pytest.param("ray", marks=pytest.mark.ray)])
async def test_restart_mid_run_finishes_every_job_exactly_once(
    sessions: async_sessionmaker[AsyncSession],
    tiny_config: ModelConfig,
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    """The database is the source of truth: a new bot (and pool) resumes what the old one left."""
    if backend == "ray":
        request.getfixturevalue("ray_instance")
    files = FileStore(tmp_path / "files")
    first_pool = _pool(tiny_config, backend)
    await first_pool.start()
    first = JobService(sessions, first_pool, files)
    tickets = [
        await first.submit(owner_id=1 + i % 2, spec=_spec(tiny_config, 10 * i, steps=20)) for i in range(5)
    ]
    await asyncio.wait_for(tickets[0].wait(), 60)
    async for event in tickets[1].events():  # stop while the second job is running
        if isinstance(event, Started):
            break
    await first.close()
    await first_pool.close()
    states = [job.state for job in await _jobs(sessions)]
    assert states[0] == JobState.DONE and JobState.QUEUED in states and JobState.DONE not in states[2:]

    second_pool = _pool(tiny_config, backend)
    await second_pool.start()
    second = JobService(sessions, second_pool, files)
    try:
        resumed = await second.start()
        assert [t.job_id for t in resumed] == [t.job_id for t in tickets[1:]] or len(resumed) == 4
        finals = await asyncio.wait_for(asyncio.gather(*(t.wait() for t in resumed)), 120)
        assert all(isinstance(final, Finished) for final in finals)
    finally:
        await second.close()
        await second_pool.close()

    jobs = await _jobs(sessions)
    assert [job.state for job in jobs] == [JobState.DONE] * 5
    async with sessions() as session:
        counts = dict(
            (
                await session.execute(select(ImageRecord.job_id, func.count()).group_by(ImageRecord.job_id))
            ).all()
        )
    assert counts == {job.id: 4 for job in jobs}


async def test_queue_limit_persists_nothing(
    sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    pool = _pool(tiny_config, max_queued_per_user=1)
    # Never started: jobs stay queued.
    service = JobService(sessions, pool, FileStore(tmp_path / "files"))
    await service.submit(owner_id=3, spec=_spec(tiny_config, 1))
    with pytest.raises(QueueFull):
        await service.submit(owner_id=3, spec=_spec(tiny_config, 2))
    assert len(await _jobs(sessions)) == 1
    await service.close()


async def test_only_the_owner_can_cancel(
    sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    pool = _pool(tiny_config)
    service = JobService(sessions, pool, FileStore(tmp_path / "files"))
    ticket = await service.submit(owner_id=3, spec=_spec(tiny_config, 1))
    with pytest.raises(JobNotFound, match="not one of yours"):
        await service.cancel(ticket.job_id, Viewer(4, None))
    await service.cancel(ticket.job_id, Viewer(3, None))
    assert isinstance(await asyncio.wait_for(ticket.wait(), 5), Cancelled)
    job = await service.get_job(ticket.job_id)
    assert job is not None and job.state == JobState.CANCELLED
    with pytest.raises(JobNotFound, match="already cancelled"):
        await service.cancel(ticket.job_id, Viewer(3, None))
    await service.close()


class _RecordingSink(ResultsOnly):
    """Discord as far as results go: what was posted stays posted, and can be looked up."""

    def __init__(self, fail_first: bool = False, crash_after_posting: bool = False) -> None:
        self.posted: list[int] = []
        self.looked_up: list[int] = []
        self.fail_first = fail_first
        self.crash_after_posting = crash_after_posting

    async def deliver(self, job: Job, images: object, origin_message_id: int | None = None) -> int | None:
        if self.fail_first:
            self.fail_first = False
            raise ConnectionError("Discord is unreachable")
        self.posted.append(job.id)
        if self.crash_after_posting:  # sent, but the process dies before recording the message id
            raise ConnectionError("the bot was killed")
        return 1000 + job.id

    async def find_delivered(self, job: Job, origin_message_id: int | None, since: object) -> int | None:
        self.looked_up.append(job.id)
        return 1000 + job.id if job.id in self.posted else None


@pytest.mark.parametrize("fault", ["Discord unreachable", "killed after posting"])
async def test_a_result_is_posted_exactly_once_across_restarts(
    fault: str, sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    """The first service stores the result but cannot record a message: either nothing reached
    Discord, or the post did and the process died before recording it. The next start posts it, or
    finds it in Discord; either way there is one post, and a third start changes nothing."""
    files = FileStore(tmp_path / "files")
    pool = _pool(tiny_config)
    await pool.start()
    try:
        discord = _RecordingSink(
            fail_first=fault == "Discord unreachable", crash_after_posting=fault == "killed after posting"
        )
        first = JobService(sessions, pool, files, messages=discord)
        ticket = await first.submit(owner_id=1, spec=_spec(tiny_config, 1), channel_id=77)
        assert isinstance(await asyncio.wait_for(ticket.wait(), 60), Finished)  # stored, though not recorded
        job = await first.get_job(ticket.job_id)
        assert job is not None and job.state == JobState.DONE and job.message_id is None
        assert job.delivery_started_at is not None  # the intent was recorded before sending

        discord.crash_after_posting = False
        for _ in range(2):  # the second start posts (or finds) it; the third has nothing to do
            assert await JobService(sessions, pool, files, messages=discord).start() == []
        assert discord.posted == [ticket.job_id]
        assert discord.looked_up == [ticket.job_id]  # Discord was asked once, by the second start
        job = await first.get_job(ticket.job_id)
        assert job is not None and job.message_id == 1000 + ticket.job_id
    finally:
        await pool.close()


@pytest.mark.parametrize("fault", ["Discord unreachable", "killed after posting"])
async def test_the_watchdog_posts_a_result_whose_posting_failed_without_waiting_for_a_restart(
    fault: str, sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    """A posting that failed (Discord down, or the database locked past the retries that record it)
    is retried by the running service's watchdog, once: the user does not wait for a restart."""
    pool = _pool(tiny_config)
    await pool.start()
    discord = _RecordingSink(
        fail_first=fault == "Discord unreachable", crash_after_posting=fault == "killed after posting"
    )
    service = JobService(sessions, pool, FileStore(tmp_path / "files"), messages=discord)
    try:
        await service.start(watch_every_s=0.05, sweep_every_s=None)
        ticket = await service.submit(owner_id=1, spec=_spec(tiny_config, 1), channel_id=77)
        assert isinstance(await asyncio.wait_for(ticket.wait(), 60), Finished)
        discord.crash_after_posting = False

        async def recorded() -> int:
            while (job := await service.get_job(ticket.job_id)) is None or job.message_id is None:
                await asyncio.sleep(0.05)
            return job.message_id

        assert await asyncio.wait_for(recorded(), 30) == 1000 + ticket.job_id
        assert discord.posted == [ticket.job_id]  # posted once, whichever way it failed
    finally:
        await service.close()
        await pool.close()


def _hold_write_lock(db_url: str, seconds: float) -> threading.Event:
    """Another connection takes SQLite's write lock for `seconds` (longer than the busy timeout);
    the returned event is set once it holds it."""
    held = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(db_url.split(":///", 1)[1], timeout=30)
        connection.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        connection.rollback()
        connection.close()

    threading.Thread(target=hold, daemon=True).start()
    return held


async def test_a_write_lock_longer_than_the_busy_timeout_delays_jobs_but_loses_none(
    sessions: async_sessionmaker[AsyncSession], db_url: str, tiny_config: ModelConfig, tmp_path: Path
) -> None:
    """A submit waits out the lock (retries), and a follower whose job finishes under the lock records
    it afterwards instead of dying and leaving the job 'running' for good."""
    pool = _pool(tiny_config)
    await pool.start()
    service = JobService(sessions, pool, FileStore(tmp_path / "files"))
    try:
        held = _hold_write_lock(db_url, 7.0)
        await asyncio.to_thread(held.wait, 10)
        ticket = await service.submit(owner_id=1, spec=_spec(tiny_config, 1))  # went through after the lock
        assert isinstance(await asyncio.wait_for(ticket.wait(), 60), Finished)

        running = await service.submit(owner_id=1, spec=_spec(tiny_config, 2, steps=30))
        async for event in running.events():
            if isinstance(event, Started):  # recorded as running; the result will come under the lock
                held = _hold_write_lock(db_url, 7.0)
                await asyncio.to_thread(held.wait, 10)
                break
        assert isinstance(await asyncio.wait_for(running.wait(), 90), Finished)
        assert [job.state for job in await _jobs(sessions)] == [JobState.DONE, JobState.DONE]
    finally:
        await service.close()
        await pool.close()


@pytest.mark.parametrize("ticket_started", [True, False], ids=["while-following", "before-starting"])
async def test_the_watchdog_gives_a_job_whose_follower_died_an_owner_again(
    sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path, ticket_started: bool
) -> None:
    pool = _pool(tiny_config)
    await pool.start()
    service = JobService(sessions, pool, FileStore(tmp_path / "files"))
    try:
        ticket = await service.submit(owner_id=1, spec=_spec(tiny_config, 3, steps=20))
        follower = service.followers.task_of(ticket.job_id)
        assert follower is not None
        if ticket_started:
            await anext(aiter(ticket.events()))  # it has recorded something already
        follower.cancel()  # it dies (as an unexpected error would have killed it before)
        await asyncio.gather(follower, return_exceptions=True)
        (adopted,) = await service.adopt_orphans()
        assert adopted.job_id == ticket.job_id
        assert isinstance(await asyncio.wait_for(adopted.wait(), 60), Finished)
        assert [job.state for job in await _jobs(sessions)] == [JobState.DONE]
        assert await service.adopt_orphans() == []  # nothing left without an owner
    finally:
        await service.close()
        await pool.close()


@pytest.mark.both_databases
async def test_attempts_are_counted_across_restarts(
    sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    """A job that was started twice without finishing (crashes or restarts) is failed at the next
    start instead of running again; one started once resumes with that attempt counted."""
    spec_json = _spec(tiny_config, 4).to_json()
    async with sessions.begin() as session:
        twice = await job_store.create_job(session, owner_id=1, kind="imagine", spec_json=spec_json)
        once = await job_store.create_job(session, owner_id=1, kind="imagine", spec_json=spec_json)
        for job_id in (twice.id, twice.id, once.id):
            await job_store.mark_running(session, job_id)
    pool = _pool(tiny_config)  # not started: nothing runs, the test sees what start() decided
    service = JobService(sessions, pool, FileStore(tmp_path / "files"))
    try:
        resumed = await service.start(watch_every_s=None)
        assert [ticket.job_id for ticket in resumed] == [once.id]
        handle = pool.handle_of(once.id)
        assert handle is not None and handle.attempts == 1
        failed = await service.get_job(twice.id)
        assert failed is not None and failed.state == JobState.FAILED
        assert "started 2 times without finishing" in (failed.error or "")
    finally:
        await service.close()


@pytest.mark.slow  # three bot restarts: 30 s; in CI's second step, keeping the default suite under 15 minutes
async def test_a_job_that_never_finishes_stops_after_max_attempts_across_three_restarts(
    sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    """Each bot start runs the job until it has started, then the bot dies (pool and all); the third
    start finds it started twice and fails it instead of running it an eighth time."""
    files = FileStore(tmp_path / "files")
    # Long enough (about 10 s here) to be running when the bot dies.
    spec = _spec(tiny_config, 5, steps=150).model_copy(update={"width": 128, "height": 128})
    job_id = None
    for start in range(3):
        pool = _pool(tiny_config)
        await pool.start()
        service = JobService(sessions, pool, files)
        try:
            resumed = await service.start(watch_every_s=None, sweep_every_s=None)
            if job_id is None:
                job_id = (await service.submit(owner_id=1, spec=spec)).job_id
                ticket = None
            else:
                ticket = next((t for t in resumed if t.job_id == job_id), None)
            job = await service.get_job(job_id)
            assert job is not None
            if start < 2:
                assert not job.state.finished
                # Until this start's worker has begun it (a resumed job is still "running" from before).
                deadline = time.monotonic() + 60
                while (job := await service.get_job(job_id)) is not None and job.attempts < start + 1:
                    assert time.monotonic() < deadline, "the job was never started"
                    await asyncio.sleep(0.05)
                assert job.attempts == start + 1 and job.state == JobState.RUNNING
            else:
                assert ticket is None and job.state == JobState.FAILED and job.attempts == 2
                assert "started 2 times without finishing" in (job.error or "")
        finally:
            await service.close()
            await pool.close()


class _ScriptedMessage(ResultsOnly):
    """A job's message that writes down, in order, what the job service asked it to show."""

    def __init__(self) -> None:
        self.shown: list[str] = []

    async def accepted(self, ticket: object) -> None:
        self.shown.append("accepted")

    async def progress(self, event: object) -> None:
        self.shown.append(type(event).__name__)

    async def deliver(self, job: Job, images: object, origin_message_id: int | None = None) -> int | None:
        self.shown.append("result")
        return 500 + job.id

    async def end(self, event: object) -> int | None:
        self.shown.append(f"end:{type(event).__name__}")
        return None


@pytest.mark.parametrize("outcome", ["done", "cancelled"])
async def test_the_service_alone_drives_a_jobs_message_from_accepted_to_its_end(
    outcome: str, sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path
) -> None:
    """One owner per message: whatever the job does, its message hears it from the job service, in
    order, once: accepted first, progress while it runs, then exactly one of result or end."""
    pool = _pool(tiny_config)
    await pool.start()
    service = JobService(sessions, pool, FileStore(tmp_path / "files"), messages=ResultsOnly())
    message = _ScriptedMessage()
    try:
        ticket = await service.submit(
            owner_id=1, spec=_spec(tiny_config, 5, steps=40), channel_id=3, message=message
        )
        if outcome == "cancelled":
            async for event in ticket.events():
                if isinstance(event, Started):
                    await service.cancel(ticket.job_id, Viewer(1, None))
                    break
        final = await asyncio.wait_for(ticket.wait(), 120)
        await service.close()  # the follower has shown the final event before it passed it on
        assert message.shown[0] == "accepted"
        endings = [step for step in message.shown if step == "result" or step.startswith("end:")]
        if outcome == "done":
            assert isinstance(final, Finished) and endings == ["result"] and message.shown[-1] == "result"
            assert "Progress" in message.shown
            job = await service.get_job(ticket.job_id)
            assert job is not None and job.message_id == 500 + ticket.job_id
        else:
            assert isinstance(final, Cancelled) and endings == ["end:Cancelled"]
        assert set(message.shown[1:-1]) <= {"Queued", "Started", "Progress"}
    finally:
        await pool.close()
