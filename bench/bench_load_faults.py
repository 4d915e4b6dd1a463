"""Load and faults, bigger than the suite's test: --jobs jobs from --users users (each sending one
command at a time, as people do) into the real bot on the fake Discord, while another connection
holds the database's write lock for 12 s, the worker is killed three times and the bot is restarted
once (its followers cancelled wherever they were). On SQLite and on PostgreSQL.

Prints, per database: jobs lost, posted twice, stuck, refused (and with what), the p50/p95 time from
a command to its "queued (job N)" answer, and the event loop's worst stall over the run (the fake
Discord shares the loop, so its work counts too).

    python bench/bench_load_faults.py [--jobs 200 --users 20 --database both]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sqlalchemy import select, text

from bot.loop_lag import LoopLagProbe
from bot.run import freeze_startup_objects
from bot.settings import Settings
from generation.config import ModelConfig
from generation.models.tiny import save_tiny_model
from generation.pool.worker import WorkerSettings
from generation.pool.workers import PoolConfig, WorkerPool
from storage.db import create_engine, session_factory, upgrade
from storage.files import FileStore
from storage.models import Job, JobState
from tests.e2e.harness import BotHarness
from tests.e2e.test_load_and_faults import _answer, _hold_write_lock
from tests.fakediscord.server import FakeDiscord
from tests.postgres import PostgresServer, find_pg_bin

LOCK_S = 12.0


async def hold_postgres_lock(url: str, seconds: float) -> None:
    """An exclusive lock on the jobs table: every insert and update of a job waits behind it."""
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.execute(text("LOCK TABLE jobs IN EXCLUSIVE MODE"))
        await asyncio.sleep(seconds)
        await connection.commit()
    await engine.dispose()


async def run(database: str, url: str, data_dir: Path, config: ModelConfig, jobs: int, users: int) -> None:
    upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    settings = Settings(models={"tiny": config}, default_model="tiny", data_dir=data_dir, database_url=url)
    worker = WorkerSettings(
        models={"tiny": config},
        data_dir=str(data_dir),
        device="cpu",
        threads=int(os.environ.get("BENCH_WORKER_THREADS", "2")),
        log_level=logging.ERROR,
    )
    pool = WorkerPool(PoolConfig(worker=worker, interactive_devices=("cpu",), max_queued_per_user=jobs))
    await pool.start()
    fake = FakeDiscord()
    await fake.start()
    bots = BotHarness(settings, pool, sessions, FileStore(settings.files_dir))
    each = jobs // users
    latencies: list[float] = []
    answers: list[str] = []
    bot_up = asyncio.Event()
    bot_up.set()

    async def one_user(user: int) -> None:
        for n in range(each):
            await bot_up.wait()
            sent = time.monotonic()
            interaction = await fake.slash(user, "imagine", {"prompt": f"a red circle --seed {n} --steps 2"})
            answers.append(await fake.wait_until(lambda i=interaction: _answer(fake, i), timeout=300))
            latencies.append(time.monotonic() - sent)

    def posted() -> int:
        return sum(
            1
            for m in fake.messages.values()
            for a in m["attachments"]
            if a["filename"].startswith("dreamcord_")
        )

    async def all_jobs() -> list[Job]:
        async with sessions() as session:
            return list((await session.scalars(select(Job))).all())

    started = time.monotonic()
    with fake.redirect_discord_py():
        await bots.start()
        freeze_startup_objects()  # as `dreamcord run` does
        people = [fake.add_user(f"user{n}") for n in range(users)]
        async with LoopLagProbe(tick_s=0.01) as probe:
            everyone = asyncio.gather(*(one_user(user) for user in people))
            if database == "sqlite":
                lock = asyncio.create_task(
                    asyncio.to_thread(_hold_write_lock, url.split("///", 1)[1], LOCK_S)
                )
            else:
                lock = asyncio.create_task(hold_postgres_lock(url, LOCK_S))
            for share, fault in [(0.2, "kill"), (0.5, "kill"), (0.6, "restart"), (0.8, "kill")]:
                await fake.wait_until(lambda s=share: posted() >= s * jobs, timeout=600)
                if fault == "kill":
                    os.kill(next(pid for pid in pool.worker_pids() if pid), signal.SIGKILL)
                else:
                    bot_up.clear()
                    with probe.paused():  # a restarting bot serves nobody: its own stalls do not count
                        await bots.stop()
                        await bots.start()
                    bot_up.set()
            await everyone
            await lock
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                rows = await all_jobs()
                if all(j.state.finished and (j.state != JobState.DONE or j.message_id) for j in rows):
                    break
                await asyncio.sleep(0.5)
        rows = await all_jobs()
        await bots.close()
    await fake.stop()
    await pool.close()
    await engine.dispose()

    accepted = {int(a.split()[1]) for a in answers if a.startswith("job ")}
    refused = [a for a in answers if not a.startswith("job ")]
    stuck = [j.id for j in rows if not j.state.finished or (j.state == JobState.DONE and not j.message_id)]
    lost = len(accepted - {j.id for j in rows if j.state == JobState.DONE})
    shown: dict[int, int] = {}
    for message in fake.messages.values():
        for attachment in message["attachments"]:
            if attachment["filename"].startswith("dreamcord_"):
                job_id = int(attachment["filename"].split("_")[1].split(".")[0])
                shown[job_id] = shown.get(job_id, 0) + 1
    twice = sum(1 for count in shown.values() if count > 1)
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(
        f"| {database} | {len(answers)} | {len(accepted)} | {lost} | {twice} | {len(stuck)} | {len(refused)}"
        f" | {p50:.2f} s | {p95:.2f} s | {probe.worst_s * 1000:.0f} ms | {time.monotonic() - started:.0f} s |"
    )
    for reason in sorted(set(refused)):
        print(f"  refused: {reason!r}")


async def main_async(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="dreamcord-load-"))
    tiny = str(save_tiny_model(root / "tiny"))
    config = ModelConfig(name="tiny", source=tiny, scheduler="euler_a", steps=4, guidance=7.0)
    print(
        "| database | commands | accepted | lost | posted twice | stuck | refused | answer p50 | answer p95"
        " | worst loop stall | wall |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    if args.database in ("sqlite", "both"):
        url = f"sqlite+aiosqlite:///{root / 'sqlite.db'}"
        await run("sqlite", url, root / "sqlite-data", config, args.jobs, args.users)
    if args.database in ("postgresql", "both"):
        bin_dir = find_pg_bin()
        if bin_dir is None:
            print("PostgreSQL is not installed: skipped")
            return
        server = PostgresServer(bin_dir)
        server.start()
        try:
            await run("postgresql", server.new_database(), root / "pg-data", config, args.jobs, args.users)
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, one CPU worker\n"
    )
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
