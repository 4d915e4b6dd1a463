"""Pool overhead: submit-to-result of a tiny job through the worker pool vs the runner called in-process.

python bench/bench_pool.py [--repeats 30]
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
from generation.imagine import imagine_spec
from generation.pool import PoolConfig, WorkerPool
from generation.prompt import parse_prompt
from generation.runner import JobRunner
from generation.tiny_model import save_tiny_model
from generation.worker import WorkerSettings


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--steps", type=int, default=1)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    config = ModelConfig(name="tiny", source=str(save_tiny_model(Path(tempfile.mkdtemp()) / "tiny")))
    spec = imagine_spec(parse_prompt(f"a red circle --seed 1 --steps {args.steps}"), config, 64, count=1)

    runner = JobRunner({"tiny": config}, device="cpu")
    pool = WorkerPool(
        PoolConfig(
            worker=WorkerSettings(
                models={"tiny": config}, device="cpu", threads=threads, log_level=logging.WARNING
            ),
            interactive_devices=("cpu",),
            max_queued_per_user=args.repeats + 5,
        )
    )
    await pool.start()
    job_ids = iter(range(1, 1_000_000))

    async def through_pool() -> float:
        started = time.perf_counter()
        await pool.submit(next(job_ids), spec, owner_id=1).result()
        return time.perf_counter() - started

    def direct() -> float:
        started = time.perf_counter()
        runner.run(spec)
        return time.perf_counter() - started

    await through_pool()  # warm both: model loaded, first-call costs paid
    direct()
    pooled, inline = [], []
    for _ in range(args.repeats):
        pooled.append(await through_pool())
        inline.append(direct())
    await pool.close()
    pool_ms, direct_ms = statistics.median(pooled) * 1000, statistics.median(inline) * 1000
    print(f"machine: {platform.machine()}, {threads} threads, torch {torch.__version__}")
    print(f"tiny job: 1 image 64x64, {args.steps} step(s), {args.repeats} runs each, medians")
    print(
        f"pool submit-to-result {pool_ms:.1f} ms vs direct runner call {direct_ms:.1f} ms "
        f"-> overhead {pool_ms - direct_ms:.1f} ms, ratio {pool_ms / direct_ms:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
