"""How long the event loop stalls: a probe task asks to wake every few milliseconds and records how
late it is woken. Heavy work done on the loop (decoding, parsing, encoding) shows up as lag; every
Discord event waits that long too."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from types import TracebackType


class LoopLagProbe:
    """`async with LoopLagProbe() as probe: …` then `probe.worst_s`: the longest stall meanwhile."""

    def __init__(self, tick_s: float = 0.005) -> None:
        self.tick_s = tick_s
        self.worst_s = 0.0
        self.worst_at = 0.0  # loop.time() when the worst stall ended
        self.samples = 0
        self._task: asyncio.Task[None] | None = None
        self._paused = 0
        self._skip_next = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stalls meanwhile are not counted (e.g. a restart of the bot, which serves nobody anyway)."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1
            self._skip_next = True  # the reading under way began while paused

    async def __aenter__(self) -> LoopLagProbe:
        self._task = asyncio.create_task(self._run(), name="loop-lag-probe")
        await asyncio.sleep(0)  # let it take its first reading
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await asyncio.sleep(self.tick_s * 2)  # a stall at the very end is counted too
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.tick_s)
            lag = loop.time() - asked - self.tick_s
            if self._paused or self._skip_next:
                self._skip_next = bool(self._paused)
                continue
            if lag > self.worst_s:
                self.worst_s, self.worst_at = lag, loop.time()
            self.samples += 1
