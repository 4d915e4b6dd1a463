"""The worker: one per device, keeps its models warm and runs the jobs the pool sends it.

`serve` is the whole worker; it talks through anything with `send` and `recv` (a Pipe end in a
spawned process for the local pool, a pair of queues inside a Ray actor for the Ray pool).
Messages are plain tuples (a Ray actor adds its node and GPUs to "ready" as `placement`):
    pool -> worker: ("run", job_id, spec_json) | ("cancel", job_id) | ("pause",) | ("resume",) | ("stop",)
                    | ("batch", ((job_id, spec_json), …))  (jobs that share one pipeline call)
    worker -> pool: ("ready", pid[, placement]) | ("started", job_id) | ("progress", job_id, step, total, note)
                    | ("done", job_id, JobOutput) | ("failed", job_id, reason) | ("cancelled", job_id)
                    | ("memory", bytes_reserved, bytes_total)  (on CUDA, after each job)
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from generation.config import ModelConfig
from generation.logs import configure_logging
from generation.pool.job_runs import Connection, all_cancelled, run_one
from generation.pool.worker_batch import run_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs to load models; picklable, sent to the spawned process."""

    models: dict[str, ModelConfig]
    data_dir: str | None = None  # the file store lives under it (adapters, training photos, checkpoints)
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None  # CPU threads for torch; None keeps torch's default
    log_level: int = logging.INFO
    extra_env: dict[str, str] = field(default_factory=dict)
    preview_interval_s: float = 1.5  # progress previews at most this often (0: none)


def worker_main(connection: Connection, settings: WorkerSettings) -> None:
    """Entry point of the spawned process."""
    # Ctrl-C reaches the whole process group: the bot decides when its workers stop (it lets their
    # running jobs finish first, then sends "stop"), so a worker does not die of the keypress itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(settings.extra_env)
    configure_logging(
        settings.log_level, f"%(asctime)s %(levelname)s worker[{os.getpid()}] %(name)s: %(message)s"
    )
    serve(connection, settings)


def serve(
    connection: Connection, settings: WorkerSettings, read_file: Callable[[str], bytes] | None = None
) -> None:
    """Load the runner, say "ready", then run jobs until told to stop. `read_file` fetches a file by
    its hash (default: the file store under `settings.data_dir`)."""
    if settings.data_dir:  # torch.compile's kernels, kept across restarts (generation.models.speedups)
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(settings.data_dir) / "compile-cache"))
    import torch  # after the environment is set: torch reads some of it at import

    from generation.pool.runner import JobRunner

    if settings.threads:
        torch.set_num_threads(settings.threads)
    runner = JobRunner(
        settings.models,
        device=settings.device,
        dtype=settings.dtype,
        data_dir=Path(settings.data_dir) if settings.data_dir else None,
        read_file=read_file,
    )
    inbox: queue.Queue[list[tuple[int, str]] | None] = queue.Queue()
    cancelled: set[int] = set()
    running = threading.Event()  # cleared while the pool pauses this worker for interactive jobs
    running.set()
    runner.warm_up()  # before "ready": the pool waits for it, users do not
    threading.Thread(target=_read_messages, args=(connection, inbox, cancelled, running), daemon=True).start()
    connection.send(("ready", os.getpid()))
    while (items := inbox.get()) is not None:
        if len(items) == 1:
            job_id, spec_json = items[0]
            between_steps = all_cancelled([job_id], cancelled, running)
            run_one(connection, runner, job_id, spec_json, between_steps, settings.preview_interval_s)
        else:
            run_batch(connection, runner, items, cancelled, running, settings.preview_interval_s)
        for job_id, _ in items:
            cancelled.discard(job_id)


def _read_messages(
    connection: Connection,
    inbox: queue.Queue[list[tuple[int, str]] | None],
    cancelled: set[int],
    running: threading.Event,
) -> None:
    """Runs in a thread so a cancel arrives while the main thread is inside a pipeline call."""
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            # The pool is gone: nobody will read our results, and a GPU must not stay held by an orphan.
            os._exit(0)
        match message:
            case ("batch", tuple(runs)):
                inbox.put([(int(job_id), str(spec_json)) for job_id, spec_json in runs])
            case ("run", int(job_id), str(spec_json)):
                inbox.put([(job_id, spec_json)])
            case ("cancel", int(job_id)):
                cancelled.add(job_id)
            case ("pause",):
                running.clear()
            case ("resume",):
                running.set()
            case ("stop",):
                inbox.put(None)
                return
            case _:
                log.error("ignoring unknown message %r", message)
