"""Stopping on SIGTERM/SIGINT (docker stop, systemctl stop, Ctrl-C): refuse new jobs, let the running
ones finish for up to the configured grace, then close the bot. Queued jobs stay queued in the
database, so the next start resumes them; a second signal skips what is left of the grace."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from bot.jobs import JobService

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    def __init__(
        self, jobs: JobService, grace_s: float, close: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        self.jobs, self.grace_s, self._close = jobs, grace_s, close
        self._stopping: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            try:
                loop.add_signal_handler(signum, self.request, signum)
            except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
                log.debug("cannot handle %s here", signum.name)

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)

    def request(self, signum: int = signal.SIGTERM) -> None:
        name = signal.Signals(signum).name
        if self._stopping is None:
            log.info("%s: stopping; running jobs get up to %g s to finish", name, self.grace_s)
            self._stopping = asyncio.create_task(self._stop(), name="graceful-stop")
        else:
            log.warning("%s again: stopping now; unfinished jobs resume on the next start", name)
            self._hurry.set()

    async def _stop(self) -> None:
        draining = asyncio.create_task(self.jobs.drain(self.grace_s))
        hurry = asyncio.create_task(self._hurry.wait())
        await asyncio.wait((draining, hurry), return_when=asyncio.FIRST_COMPLETED)
        hurry.cancel()
        if draining.done():
            if left := draining.result():
                log.warning("jobs %s still running: they resume on the next start", left)
        else:
            draining.cancel()
        await self._close()
