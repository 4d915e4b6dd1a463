"""How the pool reaches one worker: a `WorkerLink` carries the worker's messages both ways.

The pool (generation.pool) schedules; a link only transports. `ProcessLink` spawns a local worker
process and talks over a Pipe; `generation.ray_backend.RayLink` runs the same worker inside a Ray
actor. Either way the messages are generation.worker's tuples, and the pool's callbacks run on its
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol

from generation.worker import WorkerSettings, worker_main

OnMessage = Callable[[tuple[Any, ...]], None]
OnExit = Callable[[], None]


class WorkerLink(Protocol):
    """One worker as the pool sees it."""

    def start(self, on_message: OnMessage, on_exit: OnExit) -> None:
        """Start the worker (or, after it died, wait for its replacement). Its messages go to
        `on_message`, its death to `on_exit`, both called on the running event loop; the worker's
        first message is ("ready", pid)."""

    def send(self, message: tuple[Any, ...]) -> None: ...

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
        self._process.start()
        theirs.close()
        self._connection = ours
        reader = threading.Thread(target=_read, args=(ours, loop, on_message, on_exit), daemon=True)
        reader.start()

    def send(self, message: tuple[Any, ...]) -> None:
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
