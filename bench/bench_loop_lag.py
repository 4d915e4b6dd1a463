"""Event-loop lag: how long the bot's loop stalls while it handles heavy user files, doing the work
on the loop (as before issue 15) next to the bot's own path (a helper process for header parsing,
threads for decoding, hashing and re-encoding). Also the cost of announcing queue places with 1,000
jobs waiting, and how many announcements a stream of progress messages causes.

    python bench/bench_loop_lag.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import offload
from bot.images import fit_to_limit
from bot.loop_lag import LoopLagProbe
from generation.config import ModelConfig
from generation.models.adapter_files import (
    AdapterFileError,
    head_of,
    inspect_adapter_file,
    inspect_adapter_head,
)
from generation.pictures.uploads import open_user_image
from generation.pool.worker import WorkerSettings
from generation.pool.workers import PoolConfig, WorkerPool
from generation.prompt import parse_prompt
from generation.specs import imagine_spec
from tests.bot.test_loop_lag import hostile_header_file, noise_png, smooth_jpeg

UPLOAD_LIMIT = 10 * 2**20


async def worst_lag(work: Callable[[], Awaitable[object]]) -> float:
    async with LoopLagProbe(tick_s=0.002) as probe:
        with contextlib.suppress(AdapterFileError):  # the hostile header is refused, as it should be
            await work()
    return probe.worst_s


async def scenarios(repeats: int) -> None:
    lora, upload, result = hostile_header_file(), smooth_jpeg(8000, 5000), noise_png(4096, 4096)

    async def lora_on_loop() -> object:
        inspect_adapter_file(lora, "x.safetensors")
        return hashlib.sha256(lora).hexdigest()

    async def lora_bot_path() -> object:
        info = offload.in_helper_process(inspect_adapter_head, head_of(lora), len(lora), "x.safetensors")
        try:
            return await info
        finally:
            await asyncio.to_thread(lambda: hashlib.sha256(lora).hexdigest())

    async def upload_on_loop() -> object:
        return open_user_image(upload, "huge.jpg")

    async def upload_bot_path() -> object:
        return await asyncio.to_thread(open_user_image, upload, "huge.jpg")

    async def result_on_loop() -> object:
        return fit_to_limit(result, UPLOAD_LIMIT)

    async def result_bot_path() -> object:
        return await asyncio.to_thread(fit_to_limit, result, UPLOAD_LIMIT)

    await worst_lag(lora_bot_path)  # start the helper process once, as a running bot has
    print("| work | on the loop: worst lag | bot's path: worst lag | ratio |\n| --- | --- | --- | --- |")
    for name, on_loop, bot_path in [
        (f"hostile LoRA header ({len(lora) / 2**20:.0f} MiB of small objects)", lora_on_loop, lora_bot_path),
        (f"40 MP JPEG upload ({len(upload) / 2**20:.1f} MiB)", upload_on_loop, upload_bot_path),
        (f"4096² result, {len(result) / 2**20:.0f} MiB PNG → ≤ 10 MiB", result_on_loop, result_bot_path),
    ]:
        before, after = [], []
        for _ in range(repeats):  # interleaved
            before.append(await worst_lag(on_loop))
            after.append(await worst_lag(bot_path))
        b, a = statistics.median(before), statistics.median(after)
        print(f"| {name} | {b * 1000:.0f} ms | {a * 1000:.1f} ms | {b / a:.0f}x |")
    offload.shutdown()


async def queue_places() -> None:
    config = ModelConfig(name="tiny", source="unused")
    pool = WorkerPool(
        PoolConfig(
            worker=WorkerSettings(models={"tiny": config}),
            interactive_devices=("cpu",),
            max_queued_per_user=100,
        )
    )
    spec = imagine_spec(parse_prompt("a cat --steps 20"), config, 64)
    for job in range(1000):
        pool.submit(job, spec, owner_id=job % 20)
    pool.eta.started(-1, "interactive", 1.0)  # a running job and a measured speed: ETAs are computed
    pool.eta.speed["interactive"].observe(1.0, 1.0)
    passes = []
    for _ in range(5):
        started = time.perf_counter()
        pool._announce_positions("interactive")
        passes.append(time.perf_counter() - started)
    print(f"\none pass over 1,000 waiting jobs (20 users): {statistics.median(passes) * 1000:.1f} ms")
    counted = 0
    original = pool._announce_positions

    def counting(lane: str) -> None:
        nonlocal counted
        counted += 1
        original(lane)  # type: ignore[arg-type]

    pool._announce_positions = counting  # type: ignore[method-assign]
    for _ in range(60):  # 20 progress messages a second for 3 s (one worker's steps)
        pool._announce_soon("interactive")
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.1)
    print(f"passes caused by 60 progress messages over 3 s: {counted} (before: 60)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, python {platform.python_version()}, {args.repeats} repeats\n"
    )
    asyncio.run(scenarios(args.repeats))
    asyncio.run(queue_places())


if __name__ == "__main__":
    main()
