"""What a job reports while the pool runs it: Queued, Started, Progress, then Done, Failed or Cancelled."""

from __future__ import annotations

from dataclasses import dataclass

from generation.outputs import JobOutput


@dataclass(frozen=True)
class Queued:
    position: int  # 1 = next to start
    eta_s: float | None = None  # seconds until it starts, from the lane's measured speed


@dataclass(frozen=True)
class Started:
    worker: int
    attempt: int


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    note: str | None = None  # e.g. a training's loss and time left
    eta_s: float | None = None  # seconds until it is done, from the lane's measured speed
    preview: bytes | None = None  # a small PNG of the first picture as it is now, now and then


@dataclass(frozen=True)
class Done:
    output: JobOutput


@dataclass(frozen=True)
class Failed:
    reason: str


@dataclass(frozen=True)
class Cancelled:
    pass


Event = Queued | Started | Progress | Done | Failed | Cancelled
TERMINAL = (Done, Failed, Cancelled)
