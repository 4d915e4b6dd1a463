"""Waiting-time estimates: work per job, and an estimate checked against a simulated worker."""

from __future__ import annotations

import random

import pytest

from generation.pool.eta import EtaBook, describe_seconds, job_work
from generation.specs import ImagineSpec, TrainSpec, VarySpec

BASE = {
    "model": "m",
    "prompt": "a cat",
    "seeds": (1, 2, 3, 4),
    "width": 512,
    "height": 512,
    "steps": 20,
    "guidance": 7.0,
}


def test_work_grows_with_steps_pictures_and_pixels() -> None:
    grid = job_work(ImagineSpec(**BASE))  # type: ignore[arg-type]
    assert job_work(ImagineSpec(**{**BASE, "steps": 40})) == pytest.approx(2 * grid)  # type: ignore[arg-type]
    assert job_work(ImagineSpec(**{**BASE, "seeds": (1,)})) == pytest.approx(grid / 4)  # type: ignore[arg-type]
    assert job_work(ImagineSpec(**{**BASE, "width": 1024})) == pytest.approx(2 * grid)  # type: ignore[arg-type]
    subtle = job_work(VarySpec(**BASE, source="0" * 64, strength=0.35))  # type: ignore[arg-type]
    strong = job_work(VarySpec(**BASE, source="0" * 64, strength=0.7))  # type: ignore[arg-type]
    assert subtle < strong < grid
    training = TrainSpec(model="m", token="rex", class_noun="dog", method="lora", images=("0" * 64,) * 3,
                         resolution=512, steps=300, learning_rate=1e-4)  # fmt: skip
    assert job_work(training) > 10 * grid


class SimulatedWorker:
    """One worker that needs `seconds_per_unit` per work unit (each step jittered by up to 10 %) and
    a fixed start-up cost per job, reporting steps to the EtaBook as the pool does."""

    def __init__(self, book: EtaBook, seconds_per_unit: float, startup_s: float, seed: int = 0) -> None:
        self.book, self.rate, self.startup = book, seconds_per_unit, startup_s
        self.now = 0.0
        self.rng = random.Random(seed)
        book.clock = lambda: self.now

    def run(self, job_id: int, work: float, steps: int, on_step: object = None) -> None:
        self.book.started(job_id, "interactive", work)
        self.now += self.startup
        for step in range(1, steps + 1):
            self.now += self.rate * work / steps * self.rng.uniform(0.9, 1.1)
            self.book.progressed(job_id, step, steps)
            if callable(on_step):
                on_step(job_id, step)
        self.book.finished(job_id)


def test_the_wait_estimate_is_within_20_percent_of_a_simulated_workers_real_wait() -> None:
    book = EtaBook()
    worker = SimulatedWorker(book, seconds_per_unit=0.8, startup_s=0.3, seed=7)
    jobs = [(1, 4.0, 20), (2, 1.0, 20), (3, 8.0, 40), (4, 2.0, 20), (5, 4.0, 20)]  # (id, work, steps)
    estimates: dict[int, tuple[float, float]] = {}  # job -> (asked at, estimated wait)

    def ask(running: int, step: int) -> None:
        if running == 1 and step == 5:  # a quarter into the first job: how long until the last one starts?
            ahead = [work for job_id, work, _ in jobs[1:-1]]
            wait = book.wait("interactive", sum(ahead), len(ahead), workers=1)
            assert wait is not None
            estimates[5] = (worker.now, wait)

    starts = {}
    for job_id, work, steps in jobs:
        starts[job_id] = worker.now
        worker.run(job_id, work, steps, ask)
    asked_at, estimate = estimates[5]
    real = starts[5] - asked_at
    assert abs(estimate - real) <= 0.2 * real, (estimate, real)


def test_nothing_is_promised_before_anything_was_measured() -> None:
    book = EtaBook(clock=lambda: 0.0)
    assert book.wait("interactive", 1.0, 1, workers=1) is None
    book.started(1, "interactive", 1.0)
    assert book.progressed(1, 1, 10) is None  # the first step paid for loading: not a measurement


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(3, "about 5 s"), (42, "about 40 s"), (200, "about 3 min"), (4000, "about 1 h 7 min")],
)
def test_estimates_are_said_as_a_person_would(seconds: float, words: str) -> None:
    assert describe_seconds(seconds) == words
