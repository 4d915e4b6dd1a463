"""One job's run on a worker, and what a worker's runs share: the step check that waits while the
worker is paused and says whether a job was cancelled, the progress sender with its previews, and
the reasons a failed job gives its user. Used by the worker's loop (generation.pool.worker) and by
its batches (generation.pool.worker_batch)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # imported lazily: the pool (bot) process should not pay for torch
    from generation.pool.runner import JobRunner

log = logging.getLogger(__name__)

OUT_OF_MEMORY_REASON = (
    "the GPU ran out of memory, even with a smaller batch: try a smaller size or fewer steps"
)
INTERNAL_ERROR_REASON = "something went wrong while generating (the error is in the worker's log)"


class Connection(Protocol):
    """One end of the pool <-> worker channel."""

    def send(self, message: Any) -> None: ...

    def recv(self) -> Any: ...


def between_steps(job_id: int, cancelled: set[int], running: threading.Event) -> Callable[[], bool]:
    """The jobs' per-step check: wait here while paused (a training yields the GPU to quick jobs and
    goes on where it was), then say whether the job was cancelled."""
    return all_cancelled([job_id], cancelled, running)


def all_cancelled(job_ids: list[int], cancelled: set[int], running: threading.Event) -> Callable[[], bool]:
    def check() -> bool:
        while not running.is_set() and not all(job_id in cancelled for job_id in job_ids):
            running.wait(0.2)
        return all(job_id in cancelled for job_id in job_ids)

    return check


def run_one(
    connection: Connection,
    runner: JobRunner,
    job_id: int,
    spec_json: str,
    should_cancel: Callable[[], bool],
    preview_interval_s: float = 0.0,
    *,
    announce: bool = True,
) -> None:
    """Run one job and send its end; `announce`: send "started" first (a batch did already)."""
    import torch

    from generation.errors import DreamcordError, JobCancelled
    from generation.specs import spec_from_json

    if should_cancel():
        connection.send(("cancelled", job_id))
        return
    if announce:
        connection.send(("started", job_id))
    try:
        output = runner.run(
            spec_from_json(spec_json),
            job_id=job_id,
            on_step=ProgressSender(connection, job_id, preview_interval_s),
            should_cancel=should_cancel,
        )
    except JobCancelled:
        connection.send(("cancelled", job_id))
    except DreamcordError as error:
        connection.send(("failed", job_id, str(error)))
    except torch.OutOfMemoryError:
        log.exception("job %d: out of memory", job_id)
        connection.send(("failed", job_id, OUT_OF_MEMORY_REASON))
    except Exception:
        log.exception("job %d failed", job_id)
        connection.send(("failed", job_id, INTERNAL_ERROR_REASON))
    else:
        connection.send(("done", job_id, output))
    report_memory(connection, runner)


def report_memory(connection: Connection, runner: JobRunner) -> None:
    """After a job on CUDA, what torch holds of the GPU (for /metrics)."""
    import torch

    device = runner.models.current_device
    if device is not None and device.type == "cuda":
        _, total = torch.cuda.mem_get_info(device)
        connection.send(("memory", torch.cuda.memory_reserved(device), total))


def release_cached_memory() -> None:
    """Give back the GPU memory torch caches (after an out-of-memory error, before trying smaller)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class ProgressSender:
    """Sends each step to the pool, with a low-resolution preview every `interval_s` at most (the
    pipelines' step callback asks `preview_due` and hands one over: generation.operations.preview)."""

    def __init__(self, connection: Connection, job_id: int, interval_s: float) -> None:
        self.connection, self.job_id, self.interval_s = connection, job_id, interval_s
        self._last = time.monotonic()  # none at the very start: the first steps are only noise
        self._preview: bytes | None = None

    def __call__(self, step: int, total: int, note: str | None = None) -> None:
        self.connection.send(("progress", self.job_id, step, total, note, self._preview))
        self._preview = None

    def preview_due(self) -> bool:
        return self.interval_s > 0 and time.monotonic() - self._last >= self.interval_s

    def preview(self, png: bytes) -> None:
        self._preview, self._last = png, time.monotonic()
