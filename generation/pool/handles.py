"""What the pool hands out and keeps: its configuration, a handle per submitted job (events, result,
cancel), a slot per worker, and the errors it raises."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

from generation.config import ADAPTERS_KEPT_PER_WORKER, RayOptions
from generation.errors import DreamcordError, JobCancelled
from generation.events import TERMINAL, Cancelled, Done, Event, Failed
from generation.outputs import JobOutput
from generation.pool.local_backend import WorkerLink
from generation.pool.worker import WorkerSettings
from generation.specs import JobSpec, Lane, adapter_files


class QueueFull(DreamcordError):
    """A user already has as many jobs waiting as the pool allows."""


class JobFailed(DreamcordError):
    """A job ended in failure; the message says why, for the user."""


@dataclass(frozen=True)
class PoolConfig:
    worker: WorkerSettings
    interactive_devices: tuple[str, ...] = ("auto",)  # one interactive worker per entry
    training_devices: tuple[str, ...] = ()  # one training worker per entry; () disables training
    max_queued_per_user: int = 10
    max_attempts: int = 2  # the first run plus one retry after a worker crash
    announce_every_s: float = 1.0  # queue places and ETAs are recomputed at most this often per lane
    # A training worker on the same device as a busy interactive worker pauses between steps.
    preempt_training: bool = True
    # How long a job that could share a call waits for a partner (0: only jobs already queued are batched).
    batch_wait_s: float = 0.0
    backend: Literal["local", "ray"] = "local"
    ray: RayOptions = field(default_factory=RayOptions)  # backend = "ray" only


class JobHandle:
    """A submitted job: its events as they happen, its result, and a way to cancel it."""

    def __init__(
        self,
        job_id: int,
        owner_id: int,
        spec: JobSpec,
        lane: Lane,
        cancel: Callable[[int], bool],
        spec_json: str | None = None,
    ) -> None:
        self.job_id, self.owner_id, self.spec, self.lane = job_id, owner_id, spec, lane
        self.spec_json = spec_json or spec.to_json()  # serialised once, sent as is (a retry too)
        self.attempts = 0
        self.sequence = 0  # submission order, the tie-breaker between users
        self.position: int | None = None
        self.announced_eta: float | None = None
        self.relax = False  # Relax: starts only when no Fast job is waiting in its lane
        self.queued_at = time.monotonic()  # for the wait for a batch partner (PoolConfig.batch_wait_s)
        self.finished = False
        self._cancel = cancel
        self._events: asyncio.Queue[Event] = asyncio.Queue()

    def _emit(self, event: Event) -> None:
        if self.finished:
            return
        self.finished = isinstance(event, TERMINAL)
        self._events.put_nowait(event)

    async def events(self) -> AsyncIterator[Event]:
        """Every event in order, ending with Done, Failed or Cancelled."""
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, TERMINAL):
                return

    async def result(self) -> JobOutput:
        async for event in self.events():
            if isinstance(event, Done):
                return event.output
            if isinstance(event, Failed):
                raise JobFailed(event.reason)
            if isinstance(event, Cancelled):
                raise JobCancelled()
        raise AssertionError("events() always ends with a terminal event")

    def cancel(self) -> None:
        self._cancel(self.job_id)


@dataclass
class WorkerSlot:
    """One worker as the pool sees it: where it runs, what it runs now and what it holds warm."""

    index: int
    lane: Lane
    device: str
    link: WorkerLink | None = None
    pid: int | None = None  # the worker's process id, from its "ready" message
    placement: str | None = None  # a Ray worker's node and GPUs, from its "ready" message
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    current: JobHandle | None = None  # the job it runs, or the first of a batch still running
    riders: list[JobHandle] = field(default_factory=list)  # the other jobs of its batch, if any
    warm_model: str | None = None
    warm_adapters: OrderedDict[str, None] = field(default_factory=OrderedDict)  # file hashes, LRU
    incarnation: int = 0  # bumped on each restart, so a dead process's late messages are ignored
    paused: bool = False  # a training worker told to yield its device to interactive jobs
    gpu_memory: tuple[int, int] | None = None  # (bytes torch holds, device total), after each job on CUDA

    @property
    def where(self) -> str:
        """The hardware it runs on: two workers with the same `where` share a device."""
        return self.placement or self.device

    @property
    def idle(self) -> bool:
        return self.ready.is_set() and self.current is None

    def running(self) -> list[JobHandle]:
        return ([self.current] if self.current is not None else []) + self.riders

    def job(self, job_id: int) -> JobHandle | None:
        return next((handle for handle in self.running() if handle.job_id == job_id), None)

    def ended(self, handle: JobHandle) -> None:
        """One of its jobs ended: the next of its batch (if any) becomes the current one."""
        if handle is self.current:
            self.current = self.riders.pop(0) if self.riders else None
        elif handle in self.riders:
            self.riders.remove(handle)

    def note_warm(self, spec: JobSpec) -> None:
        """Remember what the worker will hold after this job: its model and (LRU) its adapters."""
        self.warm_model = getattr(spec, "model", self.warm_model)
        for digest in adapter_files(spec):
            self.warm_adapters[digest] = None
            self.warm_adapters.move_to_end(digest)
        while len(self.warm_adapters) > ADAPTERS_KEPT_PER_WORKER:
            self.warm_adapters.popitem(last=False)


@dataclass(frozen=True)
class PoolLoad:
    workers: tuple[str, ...]  # "interactive on cuda:0", …
    running: int
    waiting: int
