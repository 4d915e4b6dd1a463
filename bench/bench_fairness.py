"""Fairness under a flood: one user queues many jobs at once, another sends a job now and then.
How long does the second user wait, next to how long one job takes? And how good are the ETAs?

Real worker pool, one CPU worker, the tiny model. The flooder submits --flood jobs at t=0; the
other user submits one job every `--gap` job durations. Reports the other user's median and worst
wait (submit to start), the median job duration, what a first-come-first-served queue would have
made them wait, and the error of the first ETA each waiting job was given.

    python bench/bench_fairness.py [--flood 20 --others 5 --steps 8]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from generation.config import ModelConfig
from generation.models.tiny import save_tiny_model
from generation.pool.worker import WorkerSettings
from generation.pool.workers import Done, JobHandle, PoolConfig, Queued, Started, WorkerPool
from generation.prompt import parse_prompt
from generation.specs import imagine_spec

FLOODER, OTHER = 1, 2


class Timeline:
    def __init__(self) -> None:
        self.submitted: dict[int, float] = {}
        self.started: dict[int, float] = {}
        self.done: dict[int, float] = {}
        self.first_eta: dict[int, tuple[float, float]] = {}  # job -> (when, estimated wait)
        self.last_eta: dict[int, tuple[float, float]] = {}  # the last estimate before it started

    async def follow(self, handle: JobHandle) -> None:
        async for event in handle.events():
            now = time.perf_counter()
            if isinstance(event, Queued) and event.eta_s is not None:
                self.first_eta.setdefault(handle.job_id, (now, event.eta_s))
                self.last_eta[handle.job_id] = (now, event.eta_s)
            elif isinstance(event, Started):
                self.started[handle.job_id] = now
            elif isinstance(event, Done):
                self.done[handle.job_id] = now


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=20)
    parser.add_argument("--others", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--gap", type=float, default=2.5, help="the other user's pause, in job durations")
    args = parser.parse_args()
    config = ModelConfig(name="tiny", source=str(save_tiny_model(Path(tempfile.mkdtemp()) / "tiny")))
    spec = imagine_spec(parse_prompt(f"a red circle --seed 1 --steps {args.steps}"), config, 64)
    worker = WorkerSettings(models={"tiny": config}, device="cpu", threads=2, log_level=logging.WARNING)
    pool = WorkerPool(
        PoolConfig(worker=worker, interactive_devices=("cpu",), max_queued_per_user=args.flood + 5)
    )
    await pool.start()
    for warm in range(4):  # model loaded, first-call costs paid, a few jobs' speed measured
        warm_started = time.perf_counter()
        await pool.submit(warm, spec, owner_id=99).result()
        duration = time.perf_counter() - warm_started

    timeline, followers = Timeline(), []
    ids = iter(range(100, 10_000))  # (0-3: warm-up)
    for _ in range(args.flood):
        job_id = next(ids)
        timeline.submitted[job_id] = time.perf_counter()
        followers.append(asyncio.create_task(timeline.follow(pool.submit(job_id, spec, owner_id=FLOODER))))
    others = []
    for _ in range(args.others):
        await asyncio.sleep(args.gap * duration)
        job_id = next(ids)
        others.append(job_id)
        timeline.submitted[job_id] = time.perf_counter()
        followers.append(asyncio.create_task(timeline.follow(pool.submit(job_id, spec, owner_id=OTHER))))
    await asyncio.gather(*followers)
    await pool.close()

    durations = [timeline.done[j] - timeline.started[j] for j in timeline.done]
    job_s = statistics.median(durations)
    waits = [timeline.started[j] - timeline.submitted[j] for j in others]
    fifo = [sum(1 for f in timeline.submitted if f < 1000 and f not in others and timeline.submitted[f] < timeline.submitted[j]
                and timeline.done[f] > timeline.submitted[j]) * job_s for j in others]  # fmt: skip

    def eta_errors(estimates: dict[int, tuple[float, float]]) -> list[float]:
        return [
            abs((timeline.started[j] - when) - eta) / max(timeline.started[j] - when, 1e-9)
            for j, (when, eta) in estimates.items()
            if timeline.started[j] - when > 2 * job_s  # waits of a few jobs or more: short ones are all noise
        ]

    errors, last_errors = eta_errors(timeline.first_eta), eta_errors(timeline.last_eta)
    print(f"machine: {platform.machine()}, torch {torch.__version__}, 1 CPU worker (2 threads), tiny model")
    print(
        f"flood: {args.flood} jobs at once; other user: {args.others} jobs, one every {args.gap} job durations"
    )
    print(f"median job duration: {job_s * 1000:.0f} ms")
    print(f"other user's wait: median {statistics.median(waits) * 1000:.0f} ms "
          f"({statistics.median(waits) / job_s:.2f} job durations), worst {max(waits) * 1000:.0f} ms "
          f"({max(waits) / job_s:.2f})")  # fmt: skip
    print(f"first come, first served would have made them wait: median {statistics.median(fifo) * 1000:.0f} ms "
          f"({statistics.median(fifo) / job_s:.1f} job durations)")  # fmt: skip
    if errors:
        print(f"ETA error (first estimate vs real wait, waits > 2 jobs): median {statistics.median(errors):.0%}, "
              f"worst {max(errors):.0%} over {len(errors)} jobs")  # fmt: skip
    if last_errors:
        print(f"ETA error (latest estimate before starting): median {statistics.median(last_errors):.0%}, "
              f"worst {max(last_errors):.0%} over {len(last_errors)} jobs")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
