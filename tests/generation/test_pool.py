"""The pool contract, on the tiny model, against both backends: real spawned worker processes
("local") and Ray actors on a local Ray instance with 2 CPUs ("ray")."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image

from generation.config import ModelConfig, RayOptions
from generation.errors import DreamcordError
from generation.outputs import JobOutput, encode_png
from generation.pool.runner import JobRunner
from generation.pool.worker import WorkerSettings
from generation.pool.workers import (
    CRASHED_REASON,
    Cancelled,
    Done,
    Event,
    Failed,
    JobHandle,
    PoolConfig,
    Progress,
    Queued,
    QueueFull,
    Started,
    WorkerPool,
)
from generation.prompt import parse_prompt
from generation.specs import AdapterRef, ImagineSpec, JobSpec, imagine_spec, vary_spec
from storage.files import FileStore

pytestmark = pytest.mark.asyncio(loop_scope="module")
BACKENDS = ["local", pytest.param("ray", marks=pytest.mark.ray)]


def _spec(config: ModelConfig, prompt: str = "a red circle --seed 3 --steps 2") -> ImagineSpec:
    return imagine_spec(parse_prompt(prompt), config, 64)


def _config(
    tiny_config: ModelConfig, backend: str = "local", data_dir: Path | None = None, **changes: object
) -> PoolConfig:
    worker = WorkerSettings(
        models={"tiny": tiny_config},
        device="cpu",
        threads=2,
        log_level=logging.WARNING,
        data_dir=str(data_dir) if data_dir else None,
    )
    # Places announced in the tick they change (not once a second): the tiny model's jobs are quick.
    defaults = {
        "worker": worker,
        "interactive_devices": ("cpu",),
        "backend": backend,
        "announce_every_s": 0.0,
    }
    return PoolConfig(**{**defaults, "ray": RayOptions(local_cpus=2), **changes})  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "ray":
        request.getfixturevalue("ray_instance")
    return str(request.param)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bot's data directory: its file store is what workers must get files from, by hash."""
    return tmp_path_factory.mktemp("data")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(tiny_config: ModelConfig, backend: str, data_dir: Path) -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(_config(tiny_config, backend, data_dir, max_queued_per_user=30))
    await pool.start()
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def direct(tiny_config: ModelConfig, data_dir: Path) -> JobRunner:
    """The same runner in this process, reading the same file store: what either backend must match."""
    return JobRunner({"tiny": tiny_config}, device="cpu", data_dir=data_dir)


async def _collect(handle: JobHandle) -> list[Event]:
    return [event async for event in handle.events()]


_next_id = iter(range(1, 10_000))


def _submit(pool: WorkerPool, spec: ImagineSpec, owner: int = 1) -> JobHandle:
    return pool.submit(next(_next_id), spec, owner_id=owner)


def _same_pictures(ours: JobOutput, theirs: JobOutput) -> bool:
    """Byte-identical PNGs (pixels and provenance), so the backends are interchangeable."""
    return [image.png for image in ours.images] == [image.png for image in theirs.images]


async def test_job_reports_start_every_step_and_its_images(
    pool: WorkerPool, tiny_config: ModelConfig, direct: JobRunner
) -> None:
    spec = _spec(tiny_config, "a red circle --seed 3 --steps 3")
    events = await asyncio.wait_for(_collect(_submit(pool, spec)), 60)
    assert isinstance(events[0], Started) and events[0].attempt == 1
    assert [(e.step, e.total) for e in events if isinstance(e, Progress)] == [(1, 3), (2, 3), (3, 3)]
    done = events[-1]
    assert isinstance(done, Done) and len(done.output.images) == 4
    # Same threads as the tests: byte for byte what this process renders, whichever the backend.
    assert _same_pictures(done.output, direct.run(spec))


async def test_workers_get_the_pictures_a_job_reads_by_hash(
    pool: WorkerPool, tiny_config: ModelConfig, direct: JobRunner, data_dir: Path
) -> None:
    source = encode_png(Image.new("RGB", (64, 64), (200, 30, 30)))
    digest = FileStore(data_dir / "files").put(source)
    spec: JobSpec = vary_spec(_spec(tiny_config, "a red square --steps 2"), digest, (64, 64), 64, 0.5)
    done = (await asyncio.wait_for(_collect(_submit(pool, spec)), 60))[-1]
    assert isinstance(done, Done) and _same_pictures(done.output, direct.run(spec))
    missing = spec.model_copy(update={"source": "0" * 64})
    failed = (await asyncio.wait_for(_collect(_submit(pool, missing)), 60))[-1]
    assert isinstance(failed, Failed) and "000000000000" in failed.reason


async def test_queued_jobs_learn_their_position(pool: WorkerPool, tiny_config: ModelConfig) -> None:
    # Different step counts: jobs that could share a call would start together (batching).
    handles = [_submit(pool, _spec(tiny_config, f"a red circle --steps {2 + i}")) for i in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*(_collect(h) for h in handles)), 60)
    positions = [[e.position for e in events if isinstance(e, Queued)] for events in results]
    # A position is announced again when only its ETA moved (on a loaded machine it does): the places
    # a job went through, in order, are what must hold.
    places = [[p for i, p in enumerate(seen) if i == 0 or seen[i - 1] != p] for seen in positions]
    assert places == [[], [1], [2, 1]]
    assert all(isinstance(events[-1], Done) for events in results)


async def test_a_flooding_user_does_not_starve_another(pool: WorkerPool, tiny_config: ModelConfig) -> None:
    started: list[int] = []

    async def follow(handle: JobHandle) -> None:
        async for event in handle.events():
            if isinstance(event, Started):
                started.append(handle.owner_id)

    flood = [_submit(pool, _spec(tiny_config, "a cat --steps 1"), owner=100) for _ in range(20)]
    lone = _submit(pool, _spec(tiny_config, "a dog --steps 1"), owner=200)
    await asyncio.wait_for(asyncio.gather(*(follow(h) for h in [*flood, lone])), 120)
    assert started.index(200) <= 1  # B starts after at most one of A's jobs


async def test_cancel_a_queued_job(pool: WorkerPool, tiny_config: ModelConfig) -> None:
    first, second = _submit(pool, _spec(tiny_config)), _submit(pool, _spec(tiny_config))
    second.cancel()
    events = await asyncio.wait_for(_collect(second), 30)
    assert not any(isinstance(e, Started) for e in events) and isinstance(events[-1], Cancelled)
    assert isinstance((await _collect(first))[-1], Done)


async def test_cancel_a_running_job_then_keep_serving(pool: WorkerPool, tiny_config: ModelConfig) -> None:
    handle = _submit(pool, _spec(tiny_config, "a cat --steps 150"))
    events: list[Event] = []
    async for event in handle.events():
        events.append(event)
        if isinstance(event, Progress) and event.step == 1:
            handle.cancel()
    assert isinstance(events[-1], Cancelled)
    assert max(e.step for e in events if isinstance(e, Progress)) < 150
    assert isinstance((await _collect(_submit(pool, _spec(tiny_config))))[-1], Done)


async def test_a_failing_job_reports_why_and_the_worker_keeps_serving(
    pool: WorkerPool, tiny_config: ModelConfig
) -> None:
    pids = pool.worker_pids()
    bad = _spec(tiny_config).model_copy(update={"model": "nope"})
    events = await asyncio.wait_for(_collect(_submit(pool, bad)), 30)
    assert isinstance(events[-1], Failed) and "unknown model 'nope'" in events[-1].reason
    assert isinstance((await _collect(_submit(pool, _spec(tiny_config))))[-1], Done)
    assert pool.worker_pids() == pids


async def test_queue_limit_per_user(tiny_config: ModelConfig) -> None:
    pool = WorkerPool(_config(tiny_config, max_queued_per_user=2))  # never started: jobs stay queued
    _submit(pool, _spec(tiny_config), owner=5)
    _submit(pool, _spec(tiny_config), owner=5)
    with pytest.raises(QueueFull, match="limit is 2"):
        _submit(pool, _spec(tiny_config), owner=5)
    _submit(pool, _spec(tiny_config), owner=6)  # other users are not affected


@pytest.mark.slow  # two worker crashes and restarts: 30 s; in CI's second step, keeping the default suite under 15 minutes
async def test_worker_crash_retries_the_job_once_then_fails_it(
    tiny_config: ModelConfig, backend: str
) -> None:
    pool = WorkerPool(_config(tiny_config, backend))
    await pool.start()
    try:
        long = _spec(tiny_config, "a cat --steps 150")

        async def run_killing(handle: JobHandle, kills: int) -> list[Event]:
            events: list[Event] = []
            async for event in handle.events():
                events.append(event)
                if isinstance(event, Progress) and event.step == 1 and kills > 0:
                    kills -= 1
                    pid = pool.worker_pids()[0]
                    assert pid is not None
                    os.kill(pid, signal.SIGKILL)
            return events

        events = await asyncio.wait_for(run_killing(_submit(pool, long), kills=1), 120)
        assert [e.attempt for e in events if isinstance(e, Started)] == [1, 2]
        assert isinstance(events[-1], Done)

        events = await asyncio.wait_for(run_killing(_submit(pool, long), kills=2), 120)
        assert isinstance(events[-1], Failed) and events[-1].reason == CRASHED_REASON
        # The pool recovered: the next job succeeds on a fresh worker.
        assert isinstance((await asyncio.wait_for(_collect(_submit(pool, _spec(tiny_config))), 60))[-1], Done)
    finally:
        await pool.close()


async def test_a_worker_that_dies_while_idle_is_replaced_before_the_next_job(
    tiny_config: ModelConfig, backend: str
) -> None:
    """No job pays for a death nobody saw: the pool notices it at once (a Ray actor's message stream
    fails even when idle) and the next job runs on the replacement, on its first attempt."""
    pool = WorkerPool(_config(tiny_config, backend))
    await pool.start()
    try:
        (first_pid,) = pool.worker_pids()
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)

        async def replaced() -> None:
            while pool.worker_pids()[0] in (None, first_pid):
                await asyncio.sleep(0.1)

        await asyncio.wait_for(replaced(), 60)
        events = await asyncio.wait_for(_collect(_submit(pool, _spec(tiny_config))), 60)
        assert [e.attempt for e in events if isinstance(e, Started)] == [1]
        assert isinstance(events[-1], Done)
    finally:
        await pool.close()


async def test_jobs_go_to_a_worker_that_already_holds_their_model(tiny_config: ModelConfig) -> None:
    from generation.pool.handles import WorkerSlot

    pool = WorkerPool(_config(tiny_config, interactive_devices=("cpu", "cpu", "cpu")))
    warm_other, empty, warm_tiny = (WorkerSlot(i, "interactive", "cpu") for i in range(3))
    warm_other.warm_model, warm_tiny.warm_model = "other", "tiny"
    for worker in (warm_other, empty, warm_tiny):
        worker.ready.set()
    pool._workers = [warm_other, empty, warm_tiny]
    handle = JobHandle(1, 1, _spec(tiny_config), "interactive", pool.cancel)
    assert pool._pick_worker(handle) is warm_tiny
    warm_tiny.current = handle  # busy: next best is a worker with nothing loaded
    assert pool._pick_worker(handle) is empty
    empty.current = handle
    assert pool._pick_worker(handle) is warm_other


async def test_jobs_go_to_a_worker_that_already_holds_their_adapters(tiny_config: ModelConfig) -> None:
    from generation.pool.handles import WorkerSlot

    pool = WorkerPool(_config(tiny_config, interactive_devices=("cpu", "cpu")))
    plain, holder = (WorkerSlot(i, "interactive", "cpu") for i in range(2))
    for worker in (plain, holder):
        worker.ready.set()
    pool._workers = [plain, holder]
    lora = AdapterRef(name="my-dog", kind="lora", file="a" * 64, trigger="sks dog")
    with_lora = _spec(tiny_config).model_copy(update={"adapters": (lora,)})
    plain.note_warm(_spec(tiny_config))
    holder.note_warm(with_lora)
    assert pool._pick_worker(JobHandle(1, 1, with_lora, "interactive", pool.cancel)) is holder
    assert (
        pool._pick_worker(JobHandle(2, 1, _spec(tiny_config), "interactive", pool.cancel)) is plain
    )  # first of equals
    for n in range(8):  # the worker keeps 8 adapters loaded; older ones are no longer counted as warm
        other = AdapterRef(name=f"other{n}", kind="lora", file=f"{n:064x}")
        holder.note_warm(_spec(tiny_config).model_copy(update={"adapters": (other,)}))
    assert pool._pick_worker(JobHandle(3, 1, with_lora, "interactive", pool.cancel)) is plain


async def test_training_lane_needs_its_own_workers(tiny_config: ModelConfig) -> None:
    pool = WorkerPool(_config(tiny_config, interactive_devices=()))
    with pytest.raises(DreamcordError, match="no interactive workers"):
        _submit(pool, _spec(tiny_config))


async def test_waiting_and_running_jobs_get_time_estimates_once_speed_is_measured(
    pool: WorkerPool, tiny_config: ModelConfig
) -> None:
    spec = _spec(tiny_config, "a red circle --seed 3 --steps 6")
    handles = [_submit(pool, spec, owner=900 + i) for i in range(3)]
    events = [await _collect(handle) for handle in handles]
    assert all(isinstance(history[-1], Done) for history in events)
    waiting = [e for e in events[2] if isinstance(e, Queued) and e.eta_s is not None]
    assert waiting and all(e.eta_s > 0 for e in waiting)  # type: ignore[operator]
    running = [e.eta_s for e in events[2] if isinstance(e, Progress) and e.eta_s is not None]
    assert running and running[-1] == 0  # done: nothing left


async def test_relax_jobs_start_only_when_no_fast_job_waits(tiny_config: ModelConfig, backend: str) -> None:
    pool = WorkerPool(_config(tiny_config, backend, max_queued_per_user=30))
    await pool.start()
    try:
        spec = _spec(tiny_config)
        first = pool.submit(5001, spec, owner_id=1)  # occupies the worker
        relaxed = [pool.submit(5002 + i, spec, owner_id=2, relax=True) for i in range(2)]
        fast = [pool.submit(5010 + i, spec, owner_id=3) for i in range(2)]  # submitted later, start earlier
        order = [handle.job_id for handle in pool._pending["interactive"].order()]
        assert order == [5010, 5011, 5002, 5003]
        starts: list[int] = []

        async def note_start(handle: JobHandle) -> None:
            async for event in handle.events():
                if isinstance(event, Started):
                    starts.append(handle.job_id)

        await asyncio.gather(*(note_start(h) for h in [first, *relaxed, *fast]))
        # The two Fast jobs share one call, then the two Relax ones (batching): order within a call is moot.
        assert starts[0] == 5001 and set(starts[1:3]) == {5010, 5011} and set(starts[3:]) == {5002, 5003}
    finally:
        await pool.close()


async def test_the_local_pool_and_the_bot_never_import_ray() -> None:
    """Without the `ray` extra everything but pool = "ray" works: nothing else imports it."""
    import subprocess
    import sys

    code = "import sys, bot.run, bot.cli, generation.pool.workers; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


class _RecordingLink:
    def __init__(self) -> None:
        self.sent: list[tuple[object, ...]] = []

    def send(self, message: tuple[object, ...]) -> None:
        self.sent.append(message)


async def test_a_training_yields_only_to_interactive_work_on_its_own_device(tiny_config: ModelConfig) -> None:
    """On Ray every GPU worker's device is "cuda": what decides sharing is where Ray placed it."""
    from generation.pool.handles import WorkerSlot

    pool = WorkerPool(_config(tiny_config, interactive_devices=("cuda",), training_devices=("cuda", "cuda")))
    interactive = WorkerSlot(0, "interactive", "cuda", placement="node a gpu 0")
    elsewhere = WorkerSlot(1, "training", "cuda", placement="node a gpu 1")
    beside = WorkerSlot(2, "training", "cuda", placement="node a gpu 0")  # a fractional-GPU neighbour
    links = {worker.index: _RecordingLink() for worker in (interactive, elsewhere, beside)}
    for worker in (interactive, elsewhere, beside):
        worker.link = links[worker.index]  # type: ignore[assignment]
        worker.ready.set()
    pool._workers = [interactive, elsewhere, beside]
    interactive.current = JobHandle(1, 1, _spec(tiny_config), "interactive", pool.cancel)
    pool._yield_devices()
    assert links[2].sent == [("pause",)] and links[1].sent == []
    interactive.current = None
    pool._yield_devices()
    assert links[2].sent == [("pause",), ("resume",)] and links[1].sent == []


async def test_the_pool_says_where_each_worker_runs(pool: WorkerPool, backend: str) -> None:
    (where,) = pool.load().workers
    assert (
        where == "interactive on cpu"
        if backend == "local"
        else re.fullmatch(r"interactive on node \w+ cpu", where)
    )


async def test_a_spawned_worker_inherits_no_secret_of_the_bot(
    tiny_config: ModelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers parse users' files: they get neither the bot token nor the database password (the hub
    token, which they need for gated models, stays)."""
    monkeypatch.setenv("DISCORD_TOKEN", "bot-secret")
    monkeypatch.setenv("DREAMCORD_DATABASE_URL", "postgresql+psycopg://dreamcord:pw@db/dreamcord")
    monkeypatch.setenv("HF_TOKEN", "hub-token")
    pool = WorkerPool(_config(tiny_config, "local"))
    await pool.start()
    try:
        (pid,) = pool.worker_pids()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        names = {entry.split(b"=", 1)[0] for entry in environ if entry}
        assert b"DISCORD_TOKEN" not in names and b"DREAMCORD_DATABASE_URL" not in names
        assert b"HF_TOKEN" in names
        assert os.environ["DISCORD_TOKEN"] == "bot-secret"  # the bot keeps its own
    finally:
        await pool.close()
