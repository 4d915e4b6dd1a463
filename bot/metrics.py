"""What /metrics shows (Prometheus, through prometheus-client): jobs by kind and how they ended, how
long they ran, and, read from the pool at each scrape, queue depth per lane, workers alive, worker
restarts and the GPU memory each worker's torch holds. Counters live in the process's default
registry, next to prometheus-client's process metrics (memory, CPU, open files)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from generation.pool.workers import WorkerPool

JOBS_SUBMITTED = Counter(
    "dreamcord_jobs_submitted", "Jobs accepted (persisted and queued), by kind", ["kind"]
)
JOBS_FINISHED = Counter(
    "dreamcord_jobs_finished", "Jobs that reached a final state, by kind and state", ["kind", "state"]
)
JOB_SECONDS = Histogram(
    "dreamcord_job_run_seconds",
    "From a worker starting a job to its result being stored, by kind",
    ["kind"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)


class PoolCollector(Collector):
    """The pool's state, read when Prometheus scrapes (nothing to keep in step in between)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "dreamcord_queue_depth", "Jobs waiting for a worker, by lane", labels=["lane"]
        )
        for lane, waiting in self.pool.queue_depths().items():
            depth.add_metric([lane], waiting)
        yield depth
        workers = self.pool.workers()
        alive = GaugeMetricFamily(
            "dreamcord_workers_alive", "Workers started and ready, by lane", labels=["lane"]
        )
        busy = GaugeMetricFamily("dreamcord_workers_busy", "Workers running a job, by lane", labels=["lane"])
        for lane in sorted({worker.lane for worker in workers}):
            alive.add_metric([lane], sum(1 for w in workers if w.lane == lane and w.ready.is_set()))
            busy.add_metric([lane], sum(1 for w in workers if w.lane == lane and w.current is not None))
        yield alive
        yield busy
        yield CounterMetricFamily(
            "dreamcord_worker_restarts",
            "Workers started again after they died",
            value=self.pool.worker_restarts,
        )
        yield CounterMetricFamily(
            "dreamcord_batched_jobs",
            "Jobs that shared one pipeline call with other users' jobs (cross-user batching)",
            value=self.pool.batched_jobs,
        )
        used = GaugeMetricFamily(
            "dreamcord_gpu_memory_reserved_bytes",
            "GPU memory torch holds, per worker",
            labels=["worker", "device"],
        )
        total = GaugeMetricFamily(
            "dreamcord_gpu_memory_total_bytes", "The GPU's memory", labels=["worker", "device"]
        )
        for worker in workers:
            if worker.gpu_memory is not None:
                used.add_metric([str(worker.index), worker.where], worker.gpu_memory[0])
                total.add_metric([str(worker.index), worker.where], worker.gpu_memory[1])
        yield used
        yield total


def watch_pool(pool: WorkerPool) -> PoolCollector:
    collector = PoolCollector(pool)
    REGISTRY.register(collector)
    return collector


def unwatch(collector: PoolCollector) -> None:
    REGISTRY.unregister(collector)
