"""The async worker pool: `submit(spec) -> JobHandle`, events per job, fair queues, crash recovery.

One worker per device and lane, each keeping its models warm: a spawned process on this machine
(`backend = "local"`) or a Ray actor anywhere in a Ray cluster (`backend = "ray"`); the scheduling
here is the same for both, only the link to the worker differs (generation.pool.local_backend). Jobs wait in
per-user queues (generation.pool.fair_queues): the next job comes from the user served least recently (round
robin that also counts the job already running), so one user's flood never starves another;
training has its own lane (its own workers) so a long training never blocks a quick /imagine. A
worker that dies is restarted and its job retried once. The pool keeps no state that matters across restarts: the job
service's database does.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generation.errors import DreamcordError
from generation.events import Cancelled, Done, Event, Failed, Progress, Queued, Started
from generation.pool.batching import partner_wait, take_partners
from generation.pool.eta import EtaBook, job_work
from generation.pool.fair_queues import FairQueues
from generation.pool.handles import JobFailed, JobHandle, PoolConfig, PoolLoad, QueueFull, WorkerSlot
from generation.pool.local_backend import ProcessLink, WorkerLink
from generation.specs import JobSpec, Lane, adapter_files, spec_files

if TYPE_CHECKING:
    from generation.pool.ray_backend import RayWorkers

__all__ = ["JobFailed", "JobHandle", "PoolConfig", "PoolLoad", "QueueFull", "WorkerPool"]  # the pool's API
log = logging.getLogger(__name__)

CRASHED_REASON = "the GPU worker crashed twice while running this job; it has been stopped"


def _eta_moved(before: float | None, now: float | None) -> bool:
    """Worth telling the user: an estimate appeared, or moved by more than 15 % (and 2 s)."""
    if now is None:
        return False
    if before is None:
        return True
    return abs(now - before) > max(2.0, 0.15 * before)


class WorkerPool:
    """Submit specs, get handles; `start()` spawns the workers and `close()` stops them."""

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self._workers: list[WorkerSlot] = []
        self._pending: dict[Lane, FairQueues[JobHandle]] = {
            "interactive": FairQueues(),
            "training": FairQueues(),
        }
        self._submissions = itertools.count()
        self._handles: dict[int, JobHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._holding = False  # stopping: queued jobs stay queued (the database resumes them)
        self.worker_restarts = 0  # replacements started after a worker died (for /metrics)
        self.batched_jobs = 0  # jobs that started sharing a pipeline call with others (for /metrics)
        self._ray: RayWorkers | None = None
        self.eta = EtaBook()
        self._announcing: dict[Lane, asyncio.TimerHandle] = {}  # a places announcement is due
        self._announced_at: dict[Lane, float] = {}

    # ------------------------------------------------------------ life cycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.config.backend == "ray":
            from generation.pool import ray_backend  # only here: without the `ray` extra nothing imports it

            data_dir = self.config.worker.data_dir
            self._ray = await ray_backend.connect(
                self.config.ray, Path(data_dir) / "files" if data_dir else None
            )
        lanes: list[tuple[Lane, str]] = [("interactive", d) for d in self.config.interactive_devices]
        lanes += [("training", d) for d in self.config.training_devices]
        self._workers = [WorkerSlot(index, lane, device) for index, (lane, device) in enumerate(lanes)]
        for worker in self._workers:
            self._spawn(worker)
        await self._wait_until_ready()

    async def _wait_until_ready(self, warn_every_s: float = 60.0) -> None:
        """Every worker up; on a Ray cluster short of GPUs, say so now and then while waiting."""
        waiting = asyncio.gather(*(worker.ready.wait() for worker in self._workers))
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(waiting), warn_every_s)
                return
            except TimeoutError:
                missing = [f"{w.lane} on {w.device}" for w in self._workers if not w.ready.is_set()]
                log.warning(
                    "still waiting for %d worker(s) to start (%s): is a device missing?",
                    len(missing),
                    ", ".join(missing),
                )

    async def close(self) -> None:
        """Stop every worker; jobs still queued or running are dropped (the database resumes them)."""
        self._closing = True
        for timer in self._announcing.values():
            timer.cancel()
        links = [worker.link for worker in self._workers if worker.link is not None]
        for link in links:
            link.send(("stop",))
        await asyncio.gather(*(link.stop() for link in links))

    def hold_queued(self) -> None:
        """Start no more jobs (the process is stopping); those running go on to their end."""
        self._holding = True

    def queue_depths(self) -> dict[Lane, int]:
        """Jobs waiting for a worker, per lane."""
        return {lane: len(queues) for lane, queues in self._pending.items()}

    def workers(self) -> list[WorkerSlot]:
        return list(self._workers)

    def running_job_ids(self) -> list[int]:
        return [handle.job_id for worker in self._workers for handle in worker.running()]

    def worker_pids(self) -> list[int | None]:
        """Each worker's process id (None until it said it is ready), wherever it runs."""
        return [worker.pid for worker in self._workers]

    def load(self) -> PoolLoad:
        """How busy the pool is right now (for /info)."""
        running = sum(len(worker.running()) for worker in self._workers)
        return PoolLoad(
            workers=tuple(f"{worker.lane} on {worker.where}" for worker in self._workers),
            running=running,
            waiting=len(self._handles) - running,
        )

    # ------------------------------------------------------------ jobs
    def submit(
        self,
        job_id: int,
        spec: JobSpec,
        *,
        owner_id: int,
        relax: bool = False,
        attempts: int = 0,
        spec_json: str | None = None,
    ) -> JobHandle:
        """Queue a job (before `start()` too: it waits for a worker); QueueFull if the owner has too many.
        `attempts`: how often it was started before (a resumed job), which counts towards max_attempts.
        `spec_json`: the spec as JSON if the caller has it already (the job service stored it)."""
        lane: Lane = spec.lane
        devices = self.config.interactive_devices if lane == "interactive" else self.config.training_devices
        if not devices:
            raise DreamcordError(f"this bot has no {lane} workers configured")
        if job_id in self._handles:
            raise ValueError(f"job {job_id} is already in the pool")
        self.check_capacity(owner_id)
        handle = JobHandle(job_id, owner_id, spec, lane, self.cancel, spec_json or spec.to_json())
        handle.sequence = next(self._submissions)
        handle.relax, handle.attempts = relax, attempts
        self._handles[job_id] = handle
        self._pending[lane].add(handle)
        self._dispatch()
        return handle

    def handle_of(self, job_id: int) -> JobHandle | None:
        """The job's handle while the pool has it (queued or running)."""
        return self._handles.get(job_id)

    def check_capacity(self, owner_id: int) -> None:
        """Raise QueueFull if `owner_id` already has the maximum number of jobs queued or running."""
        mine = sum(1 for handle in self._handles.values() if handle.owner_id == owner_id)
        if mine >= self.config.max_queued_per_user:
            raise QueueFull(
                f"you already have {mine} jobs queued or running (the limit is "
                f"{self.config.max_queued_per_user}); wait for some to finish or cancel one with /queue"
            )

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued job at once, or a running one at its next step; False if unknown/finished."""
        handle = self._handles.get(job_id)
        if handle is None:
            return False
        worker = next((w for w in self._workers if handle in w.running()), None)
        if worker is None:
            self._pending[handle.lane].remove(handle)
            self._finish(handle, Cancelled())
            self._announce_soon(handle.lane)
        elif worker.link is not None:
            worker.link.send(("cancel", job_id))
        return True

    def queue_position(self, job_id: int) -> int | None:
        """The job's place in its lane now (computed on demand: announcements may lag a second)."""
        handle = self._handles.get(job_id)
        if handle is None or any(handle in worker.running() for worker in self._workers):
            return None
        order = self._pending[handle.lane].order()
        return next((place for place, waiting in enumerate(order, start=1) if waiting is handle), None)

    # ------------------------------------------------------------ scheduling
    def _pick_worker(self, handle: JobHandle) -> WorkerSlot | None:
        """Prefer an idle worker that already holds the job's model (the one holding most of its
        adapters first), then an empty one, then any: loading a model costs more than an adapter."""
        idle = [worker for worker in self._workers if worker.lane == handle.lane and worker.idle]
        if not idle:
            return None
        model = getattr(handle.spec, "model", None)
        adapters = adapter_files(handle.spec)

        def preference(worker: WorkerSlot) -> tuple[int, int]:
            holds_model = 2 if worker.warm_model == model else 1 if worker.warm_model is None else 0
            return holds_model, sum(1 for digest in adapters if digest in worker.warm_adapters)

        return max(idle, key=preference)  # max keeps the first of equals

    def _dispatch(self) -> None:
        if self._closing or self._holding:
            return
        for lane in ("interactive", "training"):
            while self._pending[lane] and any(w.lane == lane and w.idle for w in self._workers):
                left = partner_wait(self._pending[lane], self.config.batch_wait_s, self.config.worker.models)
                if left > 0:  # the head could share a call and may still get a partner: look again then
                    if self._loop is not None:
                        self._loop.call_later(left, self._dispatch)
                    break
                handle = self._pending[lane].pop_next()
                assert handle is not None
                worker = self._pick_worker(handle)
                assert worker is not None and worker.link is not None
                batch = [handle, *take_partners(self._pending[lane], handle, self.config.worker.models)]
                worker.current, worker.riders = handle, batch[1:]
                worker.note_warm(handle.spec)
                for member in batch:
                    member.attempts += 1
                    member.position = None
                    self.eta.started(member.job_id, lane, job_work(member.spec))
                runs = tuple((member.job_id, member.spec_json, spec_files(member.spec)) for member in batch)
                if len(batch) > 1:  # one message: a Ray actor may take two messages in either order
                    self.batched_jobs += len(batch)
                    worker.link.send(("batch", runs))
                else:
                    worker.link.send(("run", *runs[0]))
            self._announce_soon(lane)
        self._yield_devices()

    def _yield_devices(self) -> None:
        """Pause training workers whose device an interactive job is using or waiting for; resume
        them when their device is free of interactive work again."""
        if not self.config.preempt_training:
            return
        waiting = bool(self._pending["interactive"])
        busy = {w.where for w in self._workers if w.lane == "interactive" and w.current is not None}
        shared = {w.where for w in self._workers if w.lane == "interactive"}
        for worker in self._workers:
            if worker.lane != "training" or worker.link is None:
                continue
            pause = worker.where in busy or (waiting and worker.where in shared)
            if pause != worker.paused:
                worker.paused = pause
                worker.link.send(("pause",) if pause else ("resume",))

    def _announce_soon(self, lane: Lane) -> None:
        """Announce the lane's places at most once per `announce_every_s`: a burst of submissions or a
        stream of progress messages costs one pass over the queue, not one each."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a loop (a synchronous caller): nothing to coalesce with
            self._announce_positions(lane)
            return
        due = self._announcing.get(lane)
        every = self.config.announce_every_s
        if due is not None and not due.cancelled() and loop.time() < due.when() + every + 1.0:
            return  # already due (a timer overdue by more belongs to a loop that is gone)
        delay = max(0.0, self._announced_at.get(lane, -every) + every - time.monotonic())
        self._announcing[lane] = loop.call_later(delay, self._announce_positions, lane)

    def _announce_positions(self, lane: Lane) -> None:
        """Tell each waiting job its place and when it should start, when either changed noticeably;
        one pass, the work ahead summed as it goes."""
        self._announcing.pop(lane, None)
        self._announced_at[lane] = time.monotonic()
        workers = sum(1 for worker in self._workers if worker.lane == lane)
        ahead_work = 0.0
        for position, handle in enumerate(self._pending[lane].order(), start=1):
            eta = self.eta.wait(lane, ahead_work, position - 1, workers)
            if handle.position != position or _eta_moved(handle.announced_eta, eta):
                handle.position, handle.announced_eta = position, eta
                handle._emit(Queued(position, eta))
            ahead_work += job_work(handle.spec)

    def _finish(self, handle: JobHandle, event: Event) -> None:
        self._handles.pop(handle.job_id, None)
        handle._emit(event)

    # ------------------------------------------------------------ workers
    def _spawn(self, worker: WorkerSlot) -> None:
        """Start the worker, or after a crash its replacement (a new process; Ray restarts an actor)."""
        worker.incarnation += 1
        worker.ready = asyncio.Event()
        worker.current, worker.warm_model, worker.paused = None, None, False
        worker.riders = []
        worker.pid = worker.placement = None
        worker.warm_adapters.clear()
        if worker.link is None:
            worker.link = self._new_link(worker.device)
        incarnation = worker.incarnation
        worker.link.start(
            lambda message: self._on_message(worker, incarnation, message),
            lambda: self._on_exit(worker, incarnation),
        )

    def _new_link(self, device: str) -> WorkerLink:
        settings = replace(self.config.worker, device=device)
        return self._ray.link(settings) if self._ray is not None else ProcessLink(settings)

    def _on_message(self, worker: WorkerSlot, incarnation: int, message: tuple[Any, ...]) -> None:
        if incarnation != worker.incarnation:
            return
        kind = message[0]
        if kind == "ready":
            worker.pid = message[1]
            worker.placement = message[2] if len(message) > 2 else None
            worker.ready.set()
            self._dispatch()
            return
        if kind == "memory":
            worker.gpu_memory = (message[1], message[2])
            return
        handle = worker.job(message[1]) if len(message) > 1 else None
        if handle is None:
            log.warning("worker %d: message for a job it is not running: %r", worker.index, message[:2])
            return
        if kind == "started":
            handle._emit(Started(worker=worker.index, attempt=handle.attempts))
        elif kind == "progress":
            eta = self.eta.progressed(handle.job_id, message[2], message[3])
            preview = message[5] if len(message) > 5 else None
            handle._emit(
                Progress(step=message[2], total=message[3], note=message[4], eta_s=eta, preview=preview)
            )
            self._announce_soon(handle.lane)  # the jobs behind it move closer too
        elif kind in {"done", "failed", "cancelled"}:
            worker.ended(handle)
            self.eta.finished(handle.job_id)
            event: Event = (
                Done(message[2])
                if kind == "done"
                else Failed(message[2])
                if kind == "failed"
                else Cancelled()
            )
            self._finish(handle, event)
            self._dispatch()

    def _on_exit(self, worker: WorkerSlot, incarnation: int) -> None:
        if self._closing or incarnation != worker.incarnation:
            return
        interrupted = worker.running()
        log.error("worker %d (pid %s) died; restarting it", worker.index, worker.pid)
        self.worker_restarts += 1
        self._spawn(worker)
        for handle in reversed(interrupted):  # retried first in line, in their order
            self.eta.finished(handle.job_id)
            if handle.attempts < self.config.max_attempts:
                log.warning("job %d: retrying after the worker crash", handle.job_id)
                self._pending[handle.lane].add(handle, retry=True)
                self._announce_soon(handle.lane)
            else:
                self._finish(handle, Failed(CRASHED_REASON))
