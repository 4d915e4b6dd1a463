"""How the pool reaches one worker: a `WorkerLink` carries the worker's messages both ways.

The pool (generation.pool.workers) schedules; a link only transports. `ProcessLink` spawns a local worker
process and talks over a Pipe; `generation.pool.ray_backend.RayLink` runs the same worker inside a Ray
actor. Either way the messages are generation.pool.worker's tuples, and the pool's callbacks run on its
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, Protocol

from generation.pool.worker import WorkerSettings, worker_main

OnMessage = Callable[[tuple[Any, ...]], None]
OnExit = Callable[[], None]

# What a worker must not inherit: it parses users' files, and needs neither the bot's token nor the
# database's password. The hub token stays: workers download gated models with it.
SECRET_NAMES = re.compile(
    r"DISCORD_TOKEN|DREAMCORD_DATABASE_URL|PG(PASSWORD|PASSFILE)|.*_(TOKEN|PASSWORD|SECRET|API_KEY)"
)
WORKER_NEEDS = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"})


@contextlib.contextmanager
def secrets_withheld() -> Iterator[None]:
    """Take the bot's secrets out of the environment while a worker process is spawned (it inherits
    the environment as it is at that moment); they are back as soon as it has started."""
    removed = {
        name: os.environ.pop(name)
        for name in list(os.environ)
        if SECRET_NAMES.fullmatch(name) and name not in WORKER_NEEDS
    }
    try:
        yield
    finally:
        os.environ.update(removed)


class WorkerLink(Protocol):
    """One worker as the pool sees it."""

    def start(self, on_message: OnMessage, on_exit: OnExit) -> None:
        """Start the worker (or, after it died, wait for its replacement). Its messages go to
        `on_message`, its death to `on_exit`, both called on the running event loop; the worker's
        first message is ("ready", pid)."""

    def send(self, message: tuple[Any, ...]) -> None:
        """A message for the worker (generation.pool.worker lists them); ("run", job_id, spec_json,
        files) also names the file-store hashes the job reads, for a link that must ship them (and
        ("batch", ((job_id, spec_json, files), …)) for each job of a batch)."""

    async def stop(self) -> None:
        """Stop the worker for good (after ("stop",) was sent, give it a moment to finish)."""


class ProcessLink:
    """A spawned process (spawn, so CUDA works) and a Pipe read by a thread."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._connection: Connection | None = None

    def start(self, on_message: OnMessage, on_exit: OnExit) -> None:
        loop = asyncio.get_running_loop()
        if self._process is not None:
            self._process.join(1)  # reap the dead one
        ours, theirs = self._context.Pipe()
        self._process = self._context.Process(target=worker_main, args=(theirs, self.settings), daemon=True)
        with secrets_withheld():
            self._process.start()
        theirs.close()
        self._connection = ours
        reader = threading.Thread(target=_read, args=(ours, loop, on_message, on_exit), daemon=True)
        reader.start()

    def send(self, message: tuple[Any, ...]) -> None:
        if message[0] == "run":  # the worker reads the file store itself
            message = message[:3]
        elif message[0] == "batch":
            message = ("batch", tuple(run[:2] for run in message[1]))
        if self._connection is not None:
            with contextlib.suppress(OSError):  # a dead worker: its reader reports the exit
                self._connection.send(message)

    async def stop(self) -> None:
        if self._process is None:
            return
        await asyncio.to_thread(self._process.join, 5)
        if self._process.is_alive():
            self._process.kill()
            await asyncio.to_thread(self._process.join, 5)


def _read(
    connection: Connection, loop: asyncio.AbstractEventLoop, on_message: OnMessage, on_exit: OnExit
) -> None:
    """Reader thread: hands each message to the event loop; EOF means the process died."""
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            loop.call_soon_threadsafe(on_exit)
            return
        loop.call_soon_threadsafe(on_message, message)
