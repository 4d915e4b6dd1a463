"""The pool's backends side by side: per-job overhead of the local pool and of Ray over a direct
runner call on a tiny job, and throughput with 2 CPU workers vs 1 (scaling ratio).

python bench/bench_ray.py [--repeats 30] [--jobs 24]
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
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # the workers' loading bars

import ray
import torch

from generation.config import ModelConfig, RayOptions
from generation.models.tiny import save_tiny_model
from generation.pool.runner import JobRunner
from generation.pool.worker import WorkerSettings
from generation.pool.workers import PoolConfig, WorkerPool
from generation.prompt import parse_prompt
from generation.specs import ImagineSpec, imagine_spec

BACKENDS = ("local", "ray")


def pool_for(config: ModelConfig, backend: str, workers: int, threads: int, queue: int) -> WorkerPool:
    return WorkerPool(
        PoolConfig(
            worker=WorkerSettings(
                models={"tiny": config}, device="cpu", threads=threads, log_level=logging.WARNING
            ),
            interactive_devices=("cpu",) * workers,
            max_queued_per_user=queue,
            backend=backend,  # type: ignore[arg-type]
            ray=RayOptions(cpus_per_worker=1),
        )
    )


async def overhead(config: ModelConfig, spec: ImagineSpec, repeats: int) -> dict[str, float]:
    """Median submit-to-result per backend, interleaved with a direct runner call (ms)."""
    threads = torch.get_num_threads()
    pools = {backend: pool_for(config, backend, 1, threads, repeats + 5) for backend in BACKENDS}
    for pool in pools.values():
        await pool.start()
    runner = JobRunner({"tiny": config}, device="cpu")
    job_ids = iter(range(1, 1_000_000))

    async def through(pool: WorkerPool) -> float:
        started = time.perf_counter()
        await pool.submit(next(job_ids), spec, owner_id=1).result()
        return time.perf_counter() - started

    def direct() -> float:
        started = time.perf_counter()
        runner.run(spec)
        return time.perf_counter() - started

    for pool in pools.values():  # warm: model loaded, first-call costs paid
        await through(pool)
    direct()
    times: dict[str, list[float]] = {"direct": [], **{backend: [] for backend in BACKENDS}}
    for _ in range(repeats):
        for backend, pool in pools.items():
            times[backend].append(await through(pool))
        times["direct"].append(direct())
    for pool in pools.values():
        await pool.close()
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


async def throughput(config: ModelConfig, spec: ImagineSpec, backend: str, workers: int, jobs: int) -> float:
    """Jobs per second with `workers` single-threaded workers, `jobs` submitted at once by 4 users."""
    pool = pool_for(config, backend, workers, 1, jobs)
    await pool.start()
    job_ids = iter(range(1, 1_000_000))
    await asyncio.gather(*(pool.submit(next(job_ids), spec, owner_id=9).result() for _ in range(workers)))
    started = time.perf_counter()
    handles = [pool.submit(next(job_ids), spec, owner_id=i % 4) for i in range(jobs)]
    await asyncio.gather(*(handle.result() for handle in handles))
    elapsed = time.perf_counter() - started
    await pool.close()
    return jobs / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="steps of each throughput job")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    config = ModelConfig(name="tiny", source=str(save_tiny_model(Path(tempfile.mkdtemp()) / "tiny")))
    make: Callable[[str, int], ImagineSpec] = lambda prompt, count: imagine_spec(  # noqa: E731
        parse_prompt(prompt), config, 64, count=count
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, ray {ray.__version__}"
    )

    tiny = make("a red circle --seed 1 --steps 1", 1)
    ms = await overhead(config, tiny, args.repeats)
    print(f"\nper-job overhead: 1 image 64x64, 1 step, {args.repeats} runs each, interleaved, medians")
    for backend in BACKENDS:
        print(
            f"  {backend:5}: submit-to-result {ms[backend]:.1f} ms, direct {ms['direct']:.1f} ms "
            f"-> overhead {ms[backend] - ms['direct']:.1f} ms"
        )
    print(
        f"  ray / local submit-to-result: {ms['ray'] / ms['local']:.2f}x "
        f"(+{ms['ray'] - ms['local']:.1f} ms per job)"
    )

    heavier = make(f"a red circle --seed 1 --steps {args.steps}", 4)
    print(f"\nthroughput: {args.jobs} jobs of 4 images 64x64, {args.steps} steps, 1 thread per worker")
    for backend in BACKENDS:
        one = await throughput(config, heavier, backend, 1, args.jobs)
        two = await throughput(config, heavier, backend, 2, args.jobs)
        print(
            f"  {backend:5}: 1 worker {one:.2f} jobs/s, 2 workers {two:.2f} jobs/s -> scaling {two / one:.2f}x"
        )
    ray.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
