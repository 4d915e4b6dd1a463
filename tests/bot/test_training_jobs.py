"""Training through the job service and the pool: the token lands in its owner's library, only they
can use it, and a long training never holds up an /imagine."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import statistics
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.jobs import Finished, JobService, JobTicket, TokenTaken, UnknownToken
from bot.visibility import Viewer
from generation.bundled.novel import hexagon_photos
from generation.config import ModelConfig
from generation.outputs import encode_png
from generation.pool.worker import WorkerSettings
from generation.pool.workers import Cancelled, PoolConfig, Progress, Started, WorkerPool
from generation.prompt import parse_prompt
from generation.specs import ImagineSpec, TrainSpec, imagine_spec, spec_from_json
from generation.training.defaults import train_spec
from storage import library
from storage.files import FileStore
from storage.models import Adapter, AdapterKind, Job, JobState, Visibility


@pytest.fixture
def config(tiny_config: ModelConfig) -> ModelConfig:
    quick = {"steps": 3, "learning_rate": 1e-2, "batch_size": 2, "class_images": 2}
    return replace(tiny_config, training={"lora": quick, "embedding": quick})


@pytest.fixture
async def service(
    request: pytest.FixtureRequest,
    sessions: async_sessionmaker[AsyncSession],
    config: ModelConfig,
    tmp_path: Path,
) -> JobService:
    """A job service on a real pool whose workers start only for tests marked `needs_worker`."""
    worker = WorkerSettings(
        models={"tiny": config}, data_dir=str(tmp_path), device="cpu", threads=1, log_level=logging.WARNING
    )
    pool = WorkerPool(PoolConfig(worker=worker, interactive_devices=("cpu",), training_devices=("cpu",)))
    if request.node.get_closest_marker("needs_worker"):
        await pool.start()
    service = JobService(sessions, pool, FileStore(tmp_path / "files"))
    yield service
    await service.close()
    await pool.close()


async def training(
    service: JobService, config: ModelConfig, method: str = "lora", **changes: object
) -> TrainSpec:
    hashes = await service.store_files([encode_png(p) for p in hexagon_photos(4, seed=3)])
    spec = train_spec(
        config, 64, token="hexy", class_noun="shape", method=method, images=tuple(hashes), seed=1
    )  # type: ignore[arg-type]
    return spec.model_copy(update={"samples": 2, "sample_steps": 2, **changes})


def imagine(config: ModelConfig, prompt: str) -> ImagineSpec:
    return imagine_spec(parse_prompt(f"{prompt} --seed 4 --steps 2"), config, 64)


async def job_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return (await session.scalar(select(func.count()).select_from(Job))) or 0


@pytest.mark.needs_worker
@pytest.mark.parametrize("method", ["lora", "embedding"])
async def test_trained_token_lands_in_the_owners_library_and_works_in_prompts(
    method: str, service: JobService, config: ModelConfig, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ticket = await service.submit(owner_id=1, spec=await training(service, config, method), channel_id=5)
    final = await asyncio.wait_for(ticket.wait(), 120)
    assert isinstance(final, Finished) and len(final.images) == 2  # the preview images
    async with sessions() as session:
        adapter = await library.owned_adapter(session, 1, "hexy")
    assert adapter is not None
    assert (adapter.kind, adapter.base_model, adapter.visibility) == (
        AdapterKind(method),
        "tiny",
        Visibility.PRIVATE,
    )
    assert service.files.exists(adapter.file_hash)
    assert adapter.trigger_words == ("sks shape" if method == "lora" else "")

    used = await service.submit(owner_id=1, spec=imagine(config, "a <hexy:0.8> on a table"), channel_id=5)
    stored = spec_from_json((await service.get_job(used.job_id)).spec_json)  # type: ignore[union-attr]
    assert isinstance(stored, ImagineSpec)
    assert stored.adapters[0].file == adapter.file_hash and stored.adapters[0].weight == 0.8
    assert isinstance(await asyncio.wait_for(used.wait(), 60), Finished)


async def test_someone_elses_private_token_is_unknown_and_nothing_is_queued(
    service: JobService, config: ModelConfig, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions.begin() as session:
        await library.add_adapter(
            session, owner_id=1, kind=AdapterKind.LORA, name="hexy", base_model="tiny", file_hash="a" * 64
        )
        await library.add_adapter(
            session, owner_id=2, kind=AdapterKind.LORA, name="mine", base_model="tiny", file_hash="b" * 64
        )
    before = await job_count(sessions)
    with pytest.raises(UnknownToken, match=r"<hexy> is not in your library; your tokens here: <mine>"):
        await service.submit(owner_id=2, spec=imagine(config, "a <hexy>"))
    with pytest.raises(UnknownToken, match="which is empty: train a token with /train"):
        await service.submit(owner_id=3, spec=imagine(config, "a <hexy>"))
    assert await job_count(sessions) == before


async def test_token_shared_with_a_guild_works_there_and_nowhere_else(
    service: JobService, config: ModelConfig, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions.begin() as session:
        adapter = await library.add_adapter(
            session, owner_id=1, kind=AdapterKind.LORA, name="hexy", base_model="tiny", file_hash="a" * 64
        )
        adapter.visibility, adapter.guild_id = Visibility.GUILD, 77
    spec = imagine(config, "a <hexy>")
    async with sessions() as session:
        assert await library.usable_adapter(session, 2, "hexy", 77) is not None
        assert await library.usable_adapter(session, 2, "hexy", 78) is None
        assert await library.usable_adapter(session, 2, "hexy", None) is None
    with pytest.raises(UnknownToken):
        await service.submit(owner_id=2, spec=spec, guild_id=78)


async def test_token_for_another_base_model_is_refused(
    service: JobService, config: ModelConfig, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions.begin() as session:
        await library.add_adapter(
            session, owner_id=1, kind=AdapterKind.LORA, name="hexy", base_model="sd15", file_hash="a" * 64
        )
    with pytest.raises(UnknownToken, match="made for model 'sd15', not 'tiny'; add --model sd15"):
        await service.submit(owner_id=1, spec=imagine(config, "a <hexy>"))


async def test_training_a_name_the_user_already_has_is_refused(
    service: JobService, config: ModelConfig, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions.begin() as session:
        await library.add_adapter(
            session, owner_id=1, kind=AdapterKind.LORA, name="hexy", base_model="tiny", file_hash="a" * 64
        )
    before = await job_count(sessions)
    with pytest.raises(TokenTaken, match="you already have <hexy>"):
        await service.submit(owner_id=1, spec=await training(service, config))
    assert await job_count(sessions) == before


@pytest.mark.needs_worker
async def test_a_long_training_never_blocks_an_imagine(
    service: JobService, config: ModelConfig, sessions: async_sessionmaker[AsyncSession]
) -> None:
    long_training = await training(service, config, "embedding", steps=5000)
    train_ticket = await service.submit(owner_id=1, spec=long_training)
    seen: list[object] = []

    async def follow() -> None:
        async for event in train_ticket.events():
            seen.append(event)

    follower = asyncio.create_task(follow())
    await asyncio.wait_for(_until(lambda: any(isinstance(e, Progress) for e in seen)), 60)
    quick = await service.submit(owner_id=1, spec=imagine(config, "a red circle"))
    assert isinstance(await asyncio.wait_for(quick.wait(), 60), Finished)
    training_progress = [e for e in seen if isinstance(e, Progress)]
    assert not follower.done()  # the training is still going
    assert training_progress[-1].step < 5000 and "left" in (training_progress[-1].note or "")

    await service.cancel(train_ticket.job_id, Viewer(1, None))
    await asyncio.wait_for(follower, 30)
    assert isinstance(seen[-1], Cancelled)
    job = await service.get_job(train_ticket.job_id)
    assert job is not None and job.state == JobState.CANCELLED
    async with sessions() as session:
        assert (await session.scalar(select(func.count()).select_from(Adapter))) == 0


@pytest.mark.needs_worker
async def test_a_training_yields_its_device_to_interactive_jobs_and_goes_on_after(
    service: JobService, config: ModelConfig
) -> None:
    """Training and interactive workers share the "cpu" device here: while quick jobs wait or run,
    the training pauses between steps (at most the step already under way finishes), then resumes."""
    train_ticket = await service.submit(
        owner_id=1, spec=await training(service, config, "embedding", steps=5000)
    )
    steps_at: list[tuple[float, int]] = []

    async def follow() -> None:
        async for event in train_ticket.events():
            if isinstance(event, Progress):
                steps_at.append((time.monotonic(), event.step))

    follower = asyncio.create_task(follow())
    await asyncio.wait_for(_until(lambda: len(steps_at) >= 4), 60)
    step_s = statistics.median(b - a for (a, _), (b, _) in itertools.pairwise(steps_at))
    quick = [await service.submit(owner_id=2, spec=imagine(config, f"a red circle {i}")) for i in range(3)]
    started_at: list[float] = []

    async def run(ticket: JobTicket) -> float:
        async for event in ticket.events():
            if isinstance(event, Started):
                started_at.append(time.monotonic())
            final = event
        assert isinstance(final, Finished)
        return time.monotonic()

    finished = max(await asyncio.wait_for(asyncio.gather(*(run(t) for t in quick)), 60))
    # From the first quick job's start to the last one's end (events are timed when they reach us,
    # so the window starts once the training had its pause message and any step event under way
    # has arrived). Long enough for several training steps, which it must not take.
    assert (finished - min(started_at)) / step_s >= 3, "too short a window to show anything"
    during = [step for at, step in steps_at if min(started_at) < at < finished]
    assert len(during) <= 1, during  # at most the step that was already running when they came
    before_resume = len(steps_at)
    await asyncio.wait_for(_until(lambda: len(steps_at) >= before_resume + 3), 60)  # it goes on
    assert steps_at[-1][1] > steps_at[before_resume - 1][1]
    await service.cancel(train_ticket.job_id, Viewer(1, None))
    await asyncio.wait_for(follower, 30)


async def _until(condition: object) -> None:
    while not condition():  # type: ignore[operator]
        await asyncio.sleep(0.05)


@pytest.mark.needs_worker
async def test_a_training_whose_worker_is_killed_resumes_from_its_checkpoint(
    service: JobService, config: ModelConfig
) -> None:
    spec = await training(service, config, "embedding", steps=400, checkpoint_every=20, samples=0)
    ticket = await service.submit(owner_id=1, spec=spec)
    events: list[object] = []
    killed = False
    async for event in ticket.events():
        events.append(event)
        if isinstance(event, Progress) and event.step >= 30 and not killed:
            killed = True
            training_pid = service.pool.worker_pids()[1]  # [interactive, training]
            os.kill(training_pid, signal.SIGKILL)
    assert isinstance(events[-1], Finished)
    attempts = [e for e in events if isinstance(e, Started)]
    assert [e.attempt for e in attempts] == [1, 2]
    after_restart = events[events.index(attempts[1]) + 1 :]
    first_step = next(e.step for e in after_restart if isinstance(e, Progress))
    assert first_step > 20  # went on from a checkpoint (20, 40, …), not from step 1
    job = await service.get_job(ticket.job_id)
    assert job is not None and job.state == JobState.DONE and job.attempts == 2
