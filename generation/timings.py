"""Where a job's time goes on the worker, phase by phase, so an operator can see the bottleneck
(`/info job`): model switch, adapters, text encoding, denoising, VAE decode, safety check, picture
encoding. The job runner opens a recording per job; code deep in an operation marks its phases
without a recorder passed down to it (a context variable: one job per worker thread at a time).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

# In the order a job meets them; /info shows them in this order.
PHASES = (
    "model switch",
    "adapters",
    "text encoding",
    "denoising",
    "decode",
    "safety check",
    "picture encoding",
    "describing",  # /describe: the describer reading the picture
)


@dataclass
class JobTimer:
    seconds: dict[str, float] = field(default_factory=dict)
    last_step_end: float | None = None

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def phases(self) -> tuple[tuple[str, float], ...]:
        return tuple((phase, round(self.seconds[phase], 4)) for phase in PHASES if phase in self.seconds)


_current: ContextVar[JobTimer | None] = ContextVar("dreamcord_job_timer", default=None)


@contextmanager
def recording() -> Iterator[JobTimer]:
    """Record the phases of the job run inside this block."""
    timer = JobTimer()
    token = _current.set(timer)
    try:
        yield timer
    finally:
        _current.reset(token)


@contextmanager
def timed(phase: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        if (timer := _current.get()) is not None:
            timer.add(phase, time.perf_counter() - started)


def step_ended() -> None:
    """A denoising step just ended (the pipeline's step callback): what follows the last one is decode."""
    if (timer := _current.get()) is not None:
        timer.last_step_end = time.perf_counter()


@contextmanager
def timed_pipeline_call() -> Iterator[None]:
    """A diffusers call: denoising up to its last step callback, VAE decode after it."""
    timer = _current.get()
    if timer is not None:
        timer.last_step_end = None
    started = time.perf_counter()
    try:
        yield
    finally:
        if timer is not None:
            ended = time.perf_counter()
            split = timer.last_step_end or ended
            timer.add("denoising", split - started)
            timer.add("decode", ended - split)
