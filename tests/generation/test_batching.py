"""Cross-user batching: queued /imagine jobs that can share one pipeline call run as one batch on
both backends; each job gets the pictures it gets alone, its own progress and its own cancel; the
fair order is kept (only the compatible run at its head is batched), the model's picture limit
holds, and a job may wait a configured moment for a partner."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from generation.config import ModelConfig
from generation.events import Cancelled, Done, Event, Progress, Started
from generation.operations.imagine import BatchMismatch, run_imagine, run_imagine_together
from generation.outputs import JobOutput
from generation.pool.batching import batch_key
from generation.pool.runner import JobRunner
from generation.pool.workers import JobHandle, WorkerPool
from generation.prompt import parse_prompt
from generation.specs import ImagineSpec, imagine_spec
from tests.conftest import assert_images_close
from tests.generation.test_pool import _config

on_module_loop = pytest.mark.asyncio(loop_scope="module")  # the pool fixture lives on it
BACKENDS = ["local", pytest.param("ray", marks=pytest.mark.ray)]
_ids = iter(range(20_000, 30_000))


def _spec(config: ModelConfig, prompt: str) -> ImagineSpec:
    return imagine_spec(parse_prompt(prompt), config, 64)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "ray":
        request.getfixturevalue("ray_instance")
    return str(request.param)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(tiny_config: ModelConfig, backend: str) -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(_config(tiny_config, backend, max_queued_per_user=30))
    await pool.start()
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def direct(tiny_config: ModelConfig) -> JobRunner:
    return JobRunner({"tiny": tiny_config}, device="cpu")


def _submit(pool: WorkerPool, spec: ImagineSpec, owner: int) -> JobHandle:
    return pool.submit(next(_ids), spec, owner_id=owner)


async def _events(handle: JobHandle) -> list[Event]:
    return [event async for event in handle.events()]


def _output(events: list[Event]) -> JobOutput:
    assert isinstance(events[-1], Done), events[-1]
    return events[-1].output


def test_what_may_share_a_call(tiny_config: ModelConfig) -> None:
    cat, dog = _spec(tiny_config, "a cat --seed 1"), _spec(tiny_config, "a dog --no blur --chaos 40 --seed 9")
    assert batch_key(cat) is not None and batch_key(cat) == batch_key(dog)  # prompts, seeds, chaos: per image
    for other in ("a cat --steps 5", "a cat --ar 2:1", "a cat --cfg 3", "a cat --tile", "a cat --stop 50"):
        assert batch_key(_spec(tiny_config, other)) != batch_key(cat), other


@on_module_loop
async def test_queued_jobs_of_several_users_share_one_call_with_their_own_pictures(
    pool: WorkerPool, direct: JobRunner, tiny_config: ModelConfig
) -> None:
    busy = _submit(pool, _spec(tiny_config, "a star --steps 8"), owner=1)  # holds the worker meanwhile
    specs = [
        _spec(tiny_config, f"a {thing} --seed {seed} --steps 3") for thing, seed in (("cat", 5), ("dog", 50))
    ]
    handles = [_submit(pool, spec, owner=owner) for owner, spec in enumerate(specs, start=2)]
    before = pool.batched_jobs
    results = await asyncio.wait_for(asyncio.gather(*(_events(h) for h in [busy, *handles])), 120)
    assert pool.batched_jobs - before == 2  # the two queued ones ran as one batch
    for spec, events in zip(specs, results[1:], strict=True):
        assert any(isinstance(event, Started) for event in events)
        assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3]  # its own progress
        alone = direct.run(spec)
        for ours, theirs in zip(_output(events).images, alone.images, strict=True):
            assert ours.seed == theirs.seed
            assert_images_close(ours.image(), theirs.image())


@on_module_loop
async def test_only_the_compatible_run_at_the_head_is_batched(
    pool: WorkerPool, tiny_config: ModelConfig
) -> None:
    """A, B compatible; C is not; D is like A: D must not start with A and B (it would jump C)."""
    busy = _submit(pool, _spec(tiny_config, "a star --steps 8"), owner=11)
    order = [
        _submit(pool, _spec(tiny_config, "a cat --steps 2"), owner=12),
        _submit(pool, _spec(tiny_config, "a dog --steps 2"), owner=13),
        _submit(pool, _spec(tiny_config, "a cow --steps 3"), owner=14),
        _submit(pool, _spec(tiny_config, "a pig --steps 2"), owner=15),
    ]
    before = pool.batched_jobs
    started: list[int] = []

    async def note(handle: JobHandle) -> None:
        async for event in handle.events():
            if isinstance(event, Started):
                started.append(handle.job_id)

    await asyncio.wait_for(asyncio.gather(*(note(h) for h in [busy, *order])), 120)
    a, b, c, d = (handle.job_id for handle in order)
    assert set(started[1:3]) == {a, b} and started[3:] == [c, d]
    assert pool.batched_jobs - before == 2


@on_module_loop
async def test_cancelling_one_job_of_a_batch_leaves_the_others(
    pool: WorkerPool, direct: JobRunner, tiny_config: ModelConfig
) -> None:
    busy = _submit(pool, _spec(tiny_config, "a star --steps 8"), owner=21)
    keep_spec = _spec(tiny_config, "a cat --seed 7 --steps 40")
    keep = _submit(pool, keep_spec, owner=22)
    drop = _submit(pool, _spec(tiny_config, "a dog --seed 8 --steps 40"), owner=23)

    async def cancel_when_running() -> list[Event]:
        events = []
        async for event in drop.events():
            events.append(event)
            if isinstance(event, Progress) and event.step == 2:
                drop.cancel()
        return events

    _, kept, dropped = await asyncio.wait_for(
        asyncio.gather(_events(busy), _events(keep), cancel_when_running()), 120
    )
    assert isinstance(dropped[-1], Cancelled) and not any(isinstance(e, Done) for e in dropped)
    assert [e.step for e in kept if isinstance(e, Progress)][-1] == 40
    for ours, theirs in zip(_output(kept).images, direct.run(keep_spec).images, strict=True):
        assert_images_close(ours.image(), theirs.image())


@on_module_loop
async def test_a_batch_holds_at_most_the_models_picture_limit(
    pool: WorkerPool, tiny_config: ModelConfig
) -> None:
    """batch_images = 8 (the default): two grids per call, so three queued grids run as two calls."""
    assert tiny_config.batch_images == 8
    busy = _submit(pool, _spec(tiny_config, "a star --steps 8"), owner=31)
    grids = [
        _submit(pool, _spec(tiny_config, f"a {thing} --steps 2"), owner=32 + i)
        for i, thing in enumerate("abc")
    ]
    before = pool.batched_jobs
    await asyncio.wait_for(asyncio.gather(*(_events(h) for h in [busy, *grids])), 120)
    assert pool.batched_jobs - before == 2


@on_module_loop
async def test_prompts_of_different_lengths_run_one_by_one_with_the_same_pictures(
    pool: WorkerPool, direct: JobRunner, tiny_config: ModelConfig
) -> None:
    """Same settings, but one prompt spans two CLIP windows: the batch falls back to single runs."""
    busy = _submit(pool, _spec(tiny_config, "a star --steps 8"), owner=41)
    long = _spec(tiny_config, "a red circle " + "on a plain background, " * 20 + "--seed 3 --steps 2")
    short = _spec(tiny_config, "a red circle --seed 4 --steps 2")
    handles = [_submit(pool, long, owner=42), _submit(pool, short, owner=43)]
    results = await asyncio.wait_for(asyncio.gather(*(_events(h) for h in [busy, *handles])), 120)
    for spec, events in zip((long, short), results[1:], strict=True):
        assert sum(isinstance(event, Started) for event in events) == 1
        for ours, theirs in zip(_output(events).images, direct.run(spec).images, strict=True):
            assert_images_close(ours.image(), theirs.image())


@on_module_loop
async def test_a_job_may_wait_a_moment_for_a_partner(tiny_config: ModelConfig) -> None:
    pool = WorkerPool(dataclasses.replace(_config(tiny_config), batch_wait_s=30.0))
    await pool.start()
    try:
        first = _submit(pool, _spec(tiny_config, "a cat --steps 2"), owner=51)
        await asyncio.sleep(0)  # the worker is idle: without the wait, `first` would start alone now
        assert pool.handle_of(first.job_id) is not None and pool.running_job_ids() == []
        second = _submit(pool, _spec(tiny_config, "a dog --steps 2"), owner=52)
        await asyncio.wait_for(asyncio.gather(_events(first), _events(second)), 120)
        assert pool.batched_jobs == 2
    finally:
        await pool.close()


def test_run_together_refuses_prompts_of_different_lengths(
    tiny_config: ModelConfig, direct: JobRunner
) -> None:
    model = direct.models.get("tiny")
    specs = [_spec(tiny_config, "a cat " + "and a dog, " * 30), _spec(tiny_config, "a cat")]
    with pytest.raises(BatchMismatch):
        run_imagine_together(model, specs)
    together = run_imagine_together(
        model, [_spec(tiny_config, "a cat --seed 1"), _spec(tiny_config, "a dog --seed 9")]
    )
    assert [len(result.images) for result in together] == [4, 4]
    assert_images_close(
        together[1].images[2], run_imagine(model, _spec(tiny_config, "a dog --seed 9")).images[2]
    )


def test_each_job_of_a_batch_gets_a_preview_of_its_own_first_picture(
    tiny_config: ModelConfig, direct: JobRunner
) -> None:
    class Sink:
        rows = (0, 4)  # the second job's first picture is the batch's fifth

        def __init__(self) -> None:
            self.shown: list[list[bytes]] = []

        def __call__(self, step: int, total: int, note: str | None = None) -> None:
            pass

        def preview_due(self) -> bool:
            return True

        def previews(self, pngs: list[bytes]) -> None:
            self.shown.append(pngs)

    sink = Sink()
    specs = [_spec(tiny_config, "a cat --seed 1 --steps 3"), _spec(tiny_config, "a dog --seed 9 --steps 3")]
    direct.run_together(specs, on_step=sink)
    assert len(sink.shown) == 3 and all(len(pngs) == 2 for pngs in sink.shown)
    assert sink.shown[-1][0] != sink.shown[-1][1]  # two pictures, not one shown twice
