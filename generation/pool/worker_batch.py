"""A worker running several users' jobs in one pipeline call (the pool's cross-user batching).

Each job keeps its own life: "started", a "progress" per step (with a preview of its own first
picture), and its own end. A job cancelled mid-way is told "cancelled" at the next step and its
pictures are dropped when the call ends; the call stops only when every job in it is cancelled.
A batch that does not fit the GPU (or whose prompts encode to different lengths) runs its jobs one
at a time instead, each as it would have run alone.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from generation.pool.job_runs import (
    INTERNAL_ERROR_REASON,
    Connection,
    all_cancelled,
    between_steps,
    release_cached_memory,
    report_memory,
    run_one,
)

if TYPE_CHECKING:
    from generation.pool.runner import JobRunner

log = logging.getLogger(__name__)


def run_batch(
    connection: Connection,
    runner: JobRunner,
    items: list[tuple[int, str]],
    cancelled: set[int],
    running: threading.Event,
    preview_interval_s: float,
) -> None:
    import torch

    from generation.errors import DreamcordError, JobCancelled
    from generation.operations.imagine import BatchMismatch
    from generation.specs import ImagineSpec, spec_from_json

    jobs: list[tuple[int, ImagineSpec]] = []
    for job_id, spec_json in items:
        spec = spec_from_json(spec_json)
        if job_id in cancelled:
            connection.send(("cancelled", job_id))
        elif not isinstance(spec, ImagineSpec):  # the pool batches only /imagine jobs
            run_one(connection, runner, job_id, spec_json, between_steps(job_id, cancelled, running))
        else:
            jobs.append((job_id, spec))
    if not jobs:
        return
    for job_id, _ in jobs:
        connection.send(("started", job_id))
    job_ids = [job_id for job_id, _ in jobs]
    progress = _BatchProgress(
        connection, job_ids, [len(spec.seeds) for _, spec in jobs], cancelled, preview_interval_s
    )
    try:
        outputs = runner.run_together(
            [spec for _, spec in jobs],
            on_step=progress,
            should_cancel=all_cancelled(job_ids, cancelled, running),
        )
    except JobCancelled:
        progress.end_all("cancelled")
    except (torch.OutOfMemoryError, BatchMismatch) as reason:
        log.warning("a batch of %d jobs runs one at a time (%s)", len(jobs), type(reason).__name__)
        release_cached_memory()
        for job_id, spec in jobs:
            if not progress.ended(job_id):
                run_one(connection, runner, job_id, spec.to_json(), between_steps(job_id, cancelled, running),
                         preview_interval_s, announce=False)  # fmt: skip
    except DreamcordError as error:
        progress.end_all("failed", str(error))
    except Exception:
        log.exception("batch of jobs %s failed", job_ids)
        progress.end_all("failed", INTERNAL_ERROR_REASON)
    else:
        for (job_id, _), output in zip(jobs, outputs, strict=True):
            if job_id in cancelled:
                progress.end(job_id, "cancelled")  # its pictures are dropped
            elif not progress.ended(job_id):
                progress.end(job_id, "done", output)
    report_memory(connection, runner)


class _BatchProgress:
    """Step reports for every job of the batch still wanted, a preview of each job's own first
    picture, and "cancelled" for a job as soon as its cancel arrives (the others go on)."""

    def __init__(
        self,
        connection: Connection,
        job_ids: list[int],
        counts: list[int],
        cancelled: set[int],
        interval_s: float,
    ) -> None:
        self.connection, self.cancelled, self.interval_s = connection, cancelled, interval_s
        self.job_ids = job_ids
        self.rows = tuple(sum(counts[:index]) for index in range(len(counts)))
        self._ended: set[int] = set()
        self._previews: dict[int, bytes] = {}
        self._last = time.monotonic()

    def __call__(self, step: int, total: int, note: str | None = None) -> None:
        for job_id in self.job_ids:
            if job_id in self._ended:
                continue
            if job_id in self.cancelled:
                self.end(job_id, "cancelled")
                continue
            self.connection.send(("progress", job_id, step, total, note, self._previews.pop(job_id, None)))

    def preview_due(self) -> bool:
        return self.interval_s > 0 and time.monotonic() - self._last >= self.interval_s

    def previews(self, pngs: list[bytes]) -> None:
        self._previews, self._last = dict(zip(self.job_ids, pngs, strict=True)), time.monotonic()

    def ended(self, job_id: int) -> bool:
        return job_id in self._ended

    def end(self, job_id: int, kind: str, payload: object = None) -> None:
        self._ended.add(job_id)
        self.connection.send((kind, job_id) if payload is None else (kind, job_id, payload))

    def end_all(self, kind: str, payload: object = None) -> None:
        for job_id in self.job_ids:
            if not self.ended(job_id):
                self.end(job_id, "cancelled" if job_id in self.cancelled else kind, payload)
