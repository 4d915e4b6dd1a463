"""The Ray backend of the worker pool: each worker is a Ray actor running generation.pool.worker.serve.

Imported only when the config says `pool = "ray"` (the `ray` extra). Ray carries work, not state:
the pool on the bot side schedules exactly as with local processes, and the database stays the
source of truth. What Ray gives us:
- placement: an actor asks for a GPU (`num_gpus`) and Ray finds a node that has one;
- messages: the pool calls the actor's `send`, and reads everything the worker says from one
  long-lived streaming generator (`messages`), which also tells us when the actor died;
- restarts: an actor that dies is restarted by Ray (`max_restarts=-1`); the pool retries its job
  once, as with a local process, so Ray itself never retries a task (`max_task_retries=0`);
- files: pictures, masks, photos and adapters go into the object store once each, by content hash,
  and reach the actor as references; the actor fetches the bytes when the job reads them, checks
  their hash, and keeps nothing past the job. No worker ever reads the bot's disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import queue
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from generation.config import RayOptions
from generation.errors import SpecError
from generation.logs import configure_logging
from generation.pool.local_backend import OnExit, OnMessage
from generation.pool.worker import WorkerSettings, serve
from storage.files import FileStore, StoredFileDamaged, StoredFileMissing

log = logging.getLogger(__name__)

MESSAGE_THREADS = 4  # the actor's `send` must get through while a job runs and `messages` waits
UPLOADS_KEPT = 256  # files the pool keeps in the object store for reuse (adapters, recent pictures)
_JOB_ENDED = {"done", "failed", "cancelled"}


async def connect(options: RayOptions, files_dir: Path | None) -> RayWorkers:
    """Join the Ray cluster at `options.address` (or start a local instance) once per process."""
    if not ray.is_initialized():
        if options.address:
            ray.init(address=options.address, namespace=options.namespace, logging_level=logging.WARNING)
        else:
            ray.init(
                num_cpus=options.local_cpus,
                namespace=options.namespace,
                include_dashboard=False,
                logging_level=logging.WARNING,
            )
    return RayWorkers(options, FileStore(files_dir) if files_dir else None)


class RayWorkers:
    """What the links of one pool share: the options, the actor class and the uploaded files."""

    def __init__(self, options: RayOptions, files: FileStore | None) -> None:
        self.options = options
        self.uploads = Uploads(files)
        self.actor_class = ray.remote(WorkerActor)

    def link(self, settings: WorkerSettings) -> RayLink:
        return RayLink(self, settings)

    def resources_for(self, device: str) -> tuple[str, dict[str, float]]:
        """The device the actor uses and the resources it asks Ray for."""
        wants_gpu = device.startswith("cuda") or (
            device == "auto" and ray.cluster_resources().get("GPU", 0) > 0  # type: ignore[no-untyped-call]
        )
        if wants_gpu:  # Ray sets CUDA_VISIBLE_DEVICES: the actor's GPU is always its "cuda"
            return "cuda", {
                "num_cpus": self.options.cpus_per_worker,
                "num_gpus": self.options.gpus_per_worker,
            }
        return ("cpu" if device == "auto" else device), {"num_cpus": self.options.cpus_per_worker}


class RayLink:
    """One worker as a Ray actor (see generation.pool.local_backend.WorkerLink)."""

    def __init__(self, workers: RayWorkers, settings: WorkerSettings) -> None:
        self._workers = workers
        device, self._resources = workers.resources_for(settings.device)
        work_dir = workers.options.work_dir or str(Path(tempfile.gettempdir()) / "dreamcord-ray")
        self.settings = replace(settings, device=device, data_dir=work_dir)
        self._actor: Any = None
        self._follower: asyncio.Task[None] | None = None

    def start(self, on_message: OnMessage, on_exit: OnExit) -> None:
        if self._actor is None:
            self._actor = self._workers.actor_class.options(
                **self._resources,
                max_restarts=-1,
                max_task_retries=0,
                max_concurrency=MESSAGE_THREADS,
            ).remote(self.settings)
        # After a crash this waits for Ray's restart: calls to a restarting actor are held for it.
        stream = self._actor.messages.options(num_returns="streaming").remote()
        self._follower = asyncio.get_running_loop().create_task(_follow(stream, on_message, on_exit))

    def send(self, message: tuple[Any, ...]) -> None:
        if self._actor is None:
            return
        if message[0] == "run":  # the files it reads go up to Ray's object store first
            message = (*message[:3], self._workers.uploads.references(message[3]))
        elif message[0] == "batch":
            runs = tuple((*run[:2], self._workers.uploads.references(run[2])) for run in message[1])
            message = ("batch", runs)
        self._actor.send.remote(message)

    async def stop(self) -> None:
        if self._follower is not None:  # the stream ends once the worker has stopped
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._follower), 5)
            self._follower.cancel()
        if self._actor is not None:
            ray.kill(self._actor, no_restart=True)


async def _follow(stream: Any, on_message: OnMessage, on_exit: OnExit) -> None:
    """Hand each message of the actor's stream to the pool; the stream failing means it died."""
    try:
        async for reference in stream:
            on_message(await reference)
    except RayActorError as error:
        log.warning("Ray worker died: %s", str(error).splitlines()[0])
        on_exit()
    except RayError:
        log.exception("Ray worker's message stream failed")
        on_exit()


class Uploads:
    """Files put into the object store once each, by hash, and handed to actors as references."""

    def __init__(self, files: FileStore | None, keep: int = UPLOADS_KEPT) -> None:
        self._files = files
        self._keep = keep
        self._references: OrderedDict[str, ray.ObjectRef[bytes]] = OrderedDict()

    def references(self, digests: Iterable[str]) -> dict[str, ray.ObjectRef[bytes]]:
        self._forget_deleted()
        found = {}
        for digest in digests:
            reference = self._references.get(digest) or self._upload(digest)
            if reference is not None:
                self._references.move_to_end(digest)
                found[digest] = reference
        return found

    def _forget_deleted(self) -> None:
        """Drop what the bot deleted from its store (/forget, finished training photos): dropping
        the last reference frees the object everywhere."""
        if self._files is not None:
            for digest in [d for d in self._references if not self._files.exists(d)]:
                del self._references[digest]

    def _upload(self, digest: str) -> ray.ObjectRef[bytes] | None:
        if self._files is None:
            return None  # the worker will say the file is missing, as the local pool does
        try:
            self._references[digest] = ray.put(self._files.read(digest))
        except (StoredFileMissing, StoredFileDamaged):  # logged by the store; the worker says why
            return None
        while len(self._references) > self._keep:  # dropping our reference frees the object
            self._references.popitem(last=False)
        return self._references[digest]


class FetchedFiles:
    """The actor's side: the references sent with each job, fetched when the job reads them and
    checked against their hash. Nothing is kept past the job: the references are dropped when it
    ends, so a file the bot deleted (/forget) does not live on in a worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_job: dict[int, dict[str, ray.ObjectRef[bytes]]] = {}

    def offer(self, job_id: int, references: dict[str, ray.ObjectRef[bytes]]) -> None:
        with self._lock:
            self._by_job[job_id] = references

    def release(self, job_id: int) -> None:
        with self._lock:
            self._by_job.pop(job_id, None)

    def read(self, digest: str) -> bytes:
        with self._lock:
            found = [refs[digest] for refs in self._by_job.values() if digest in refs]
        if not found:
            raise SpecError(f"file {digest[:12]}… was not sent to this worker (is it still stored?)")
        data: bytes = ray.get(found[0])
        if hashlib.sha256(data).hexdigest() != digest:
            raise SpecError(f"file {digest[:12]}… arrived damaged (its hash does not match)")
        return data


class WorkerActor:
    """The Ray actor: generation.pool.worker.serve in a thread, its messages through two queues."""

    def __init__(self, settings: WorkerSettings) -> None:
        os.environ.update(settings.extra_env)
        configure_logging(
            settings.log_level, f"%(asctime)s ray-worker[{os.getpid()}] %(levelname)s %(message)s"
        )
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._outbox: queue.Queue[Any] = queue.Queue()
        self._files = FetchedFiles()
        threading.Thread(target=self._serve, args=(settings,), daemon=True).start()

    def send(self, message: tuple[Any, ...]) -> None:
        if message[0] == "run":
            self._files.offer(message[1], message[3])
            message = message[:3]
        elif message[0] == "batch":
            for job_id, _, files in message[1]:
                self._files.offer(job_id, files)
            message = ("batch", tuple(run[:2] for run in message[1]))
        self._inbox.put(message)

    def messages(self) -> Iterator[tuple[Any, ...]]:
        """Everything the worker says, in order, until it stops (a streaming generator)."""
        while (message := self._outbox.get()) is not None:
            if message[0] in _JOB_ENDED:
                self._files.release(message[1])
            elif message[0] == "ready":
                message = (*message, _placement())
            yield message

    def _serve(self, settings: WorkerSettings) -> None:
        try:
            serve(_QueueConnection(self._inbox, self._outbox), settings, self._files.read)
        except BaseException:
            log.exception("the worker failed; exiting so that Ray restarts this actor")
            os._exit(1)
        self._outbox.put(None)


def _placement() -> str:
    """Where Ray put this actor: its node and GPUs (workers with the same placement share a device,
    which decides whether a training worker must yield to an interactive one)."""
    node = ray.get_runtime_context().get_node_id()[:8]
    gpus = ray.get_gpu_ids()
    return f"node {node} gpu {','.join(str(gpu) for gpu in gpus)}" if gpus else f"node {node} cpu"


class _QueueConnection:
    """The worker's end of the channel inside the actor (generation.pool.worker.Connection)."""

    def __init__(self, inbox: queue.Queue[Any], outbox: queue.Queue[Any]) -> None:
        self._inbox, self._outbox = inbox, outbox

    def send(self, message: Any) -> None:
        self._outbox.put(message)

    def recv(self) -> Any:
        return self._inbox.get()
