"""Honest waiting times: how much work a job is, and how fast each lane's workers get through work,
measured from the steps they report. Pure bookkeeping (the pool feeds it events and a clock)."""

from __future__ import annotations

import time
from collections.abc import Callable

from generation.specs import JobSpec

EWMA_WEIGHT = 0.3  # how much the newest measurement counts: follows a worker that speeds up or slows down


def job_work(spec: JobSpec) -> float:
    """Work units (denoising steps x pictures x megapixels) a job needs; each kind says (spec.work)."""
    return spec.work()


class SpeedTracker:
    """Seconds per work unit, as an exponentially weighted mean of what the workers measured."""

    def __init__(self) -> None:
        self.seconds_per_unit: float | None = None

    def observe(self, seconds: float, units: float) -> None:
        if units <= 0 or seconds <= 0:
            return
        measured = seconds / units
        previous = self.seconds_per_unit
        self.seconds_per_unit = (
            measured if previous is None else (1 - EWMA_WEIGHT) * previous + EWMA_WEIGHT * measured
        )

    def seconds(self, units: float) -> float | None:
        """How long `units` of work take on one worker; None before anything was measured."""
        return None if self.seconds_per_unit is None else units * self.seconds_per_unit


def wait_estimate(
    speed: SpeedTracker, running_left: list[float], ahead_work: float, workers: int
) -> float | None:
    """Seconds until a queued job starts: the work left in the lane's running jobs and in the jobs
    ahead of it, shared by the lane's workers (a job starts when any worker frees up)."""
    if workers <= 0:
        return None
    return speed.seconds((sum(running_left) + ahead_work) / workers)


def describe_seconds(seconds: float) -> str:
    """'about 40 s', 'about 3 min', 'about 1 h 10 min': rounded, as a person would say it."""
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60} min"


class _Running:
    def __init__(self, lane: str, work: float, started: float) -> None:
        self.lane, self.work, self.started = lane, work, started
        self.step, self.total = 0, 0
        self.at: float | None = None  # when the last step was reported

    @property
    def work_left(self) -> float:
        return self.work * (1 - self.step / self.total) if self.total else self.work


class EtaBook:
    """What the pool knows about speed: per lane, seconds per work unit from the steps workers report;
    per running job, how far it is. Time comes from `clock` (tests pass a simulated one)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.speed: dict[str, SpeedTracker] = {}
        # Per lane, seconds a job costs besides its steps (prompt encoding, decoding, PNG, transfer):
        # on small jobs it is most of the time. Tracked like the speed, in seconds per job.
        self.overhead: dict[str, SpeedTracker] = {}
        self.running: dict[int, _Running] = {}

    def started(self, job_id: int, lane: str, work: float) -> None:
        self.running[job_id] = _Running(lane, work, self.clock())
        self.speed.setdefault(lane, SpeedTracker())
        self.overhead.setdefault(lane, SpeedTracker())

    def progressed(self, job_id: int, step: int, total: int) -> float | None:
        """Record a step; the seconds the job still needs (None until the lane's speed is known)."""
        job = self.running.get(job_id)
        if job is None or total <= 0:
            return None
        now = self.clock()
        if job.at is not None and step > job.step:  # the first step also paid for loading: not measured
            self.speed[job.lane].observe(now - job.at, job.work * (step - job.step) / total)
        job.step, job.total, job.at = step, total, now
        return self.speed[job.lane].seconds(job.work_left)

    def finished(self, job_id: int) -> None:
        """A job ended: what it took beyond its steps teaches the lane's per-job overhead."""
        job = self.running.pop(job_id, None)
        steps_s = self.speed[job.lane].seconds(job.work) if job is not None else None
        if job is None or steps_s is None or job.total == 0 or job.step < job.total:
            return  # cancelled or failed part-way: says nothing about a whole job
        self.overhead[job.lane].observe(max(1e-6, self.clock() - job.started - steps_s), 1.0)

    def wait(self, lane: str, ahead_work: float, ahead_jobs: int, workers: int) -> float | None:
        """Seconds until a job starts in `lane` behind `ahead_jobs` jobs of `ahead_work` work in all
        (sums, so that a pass over a long queue is linear)."""
        speed = self.speed.get(lane)
        if speed is None:
            return None
        running_left = [job.work_left for job in self.running.values() if job.lane == lane]
        steps = wait_estimate(speed, running_left, ahead_work, workers)
        per_job = self.overhead[lane].seconds(1.0) or 0.0
        return None if steps is None else steps + per_job * (ahead_jobs + len(running_left)) / workers
