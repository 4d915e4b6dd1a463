"""Sixty jobs from six users through a held write lock, a killed worker and a bot restart: nothing
lost, nothing posted twice, nothing stuck, every command answered (bench/bench_load_faults.py is the
bigger version, with figures)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import time
from typing import Any

import pytest
from sqlalchemy import select

from storage.models import Job, JobState
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

USERS, JOBS_EACH = 6, 10
BUSY_ANSWER = "the bot is very busy right now"
JOB_NUMBER = re.compile(r"\(job (\d+)\)")


def _database_path(stack: Stack) -> str:
    return stack.settings.db_url.split("///", 1)[1]


def _hold_write_lock(path: str, seconds: float) -> None:
    """Another program (a backup, a curious operator) holding SQLite's write lock."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    time.sleep(seconds)
    connection.execute("COMMIT")
    connection.close()


def _answer(fake: Any, interaction: Any) -> str | None:
    """'job N' once the command was accepted, the ephemeral text if it was refused, else None."""
    if interaction.followup_ids:
        return str(fake.message(interaction.followup_ids[-1])["content"])
    content = (fake.message(interaction.original_id) or {}).get("content", "")
    found = JOB_NUMBER.search(content)
    return f"job {found.group(1)}" if found else None


async def test_sixty_jobs_survive_a_held_lock_a_killed_worker_and_a_bot_restart(stack: Stack) -> None:
    fake, pool = stack.fake, stack.jobs.pool
    users = [fake.add_user(f"load{n}") for n in range(USERS)]
    bot_up = asyncio.Event()
    bot_up.set()
    answers: list[str] = []

    async def one_user(user: int) -> None:
        """Like a person: one command, wait for its answer, the next."""
        for n in range(JOBS_EACH):
            await bot_up.wait()
            interaction = await fake.slash(user, "imagine", {"prompt": f"a red circle --seed {n} --steps 2"})
            answers.append(await fake.wait_until(lambda i=interaction: _answer(fake, i), timeout=120))

    def posted() -> int:
        return sum(
            1
            for m in fake.messages.values()
            for a in m["attachments"]
            if a["filename"].startswith("dreamcord_")
        )

    users_done = asyncio.gather(*(one_user(user) for user in users))
    lock = asyncio.create_task(asyncio.to_thread(_hold_write_lock, _database_path(stack), 7.0))
    await fake.wait_until(lambda: posted() >= 8, timeout=180)
    os.kill(next(pid for pid in pool.worker_pids() if pid), signal.SIGKILL)  # its job is retried
    await fake.wait_until(lambda: posted() >= 25, timeout=180)
    bot_up.clear()  # (commands sent while the bot is down would reach nobody, as on Discord)
    bot = await stack.restart_bot()  # followers cancelled wherever they were: results in flight, records not
    bot_up.set()
    await asyncio.wait_for(users_done, 300)
    await lock

    async def jobs() -> list[Job]:
        async with stack.jobs.sessions() as session:
            return list((await session.scalars(select(Job))).all())

    async def settled() -> bool:
        return all(
            job.state.finished and (job.state != JobState.DONE or job.message_id) for job in await jobs()
        )

    deadline = time.monotonic() + 240
    while not await settled():  # 0 stuck: every job ends, every result is recorded as posted
        assert time.monotonic() < deadline, [
            (j.id, j.state, j.message_id) for j in await jobs() if not j.message_id
        ]
        await asyncio.sleep(0.2)
    accepted = [a for a in answers if a.startswith("job ")]
    refused = [a for a in answers if not a.startswith("job ")]
    assert all(BUSY_ANSWER in text for text in refused), refused  # only the documented refusal
    everything = await jobs()
    assert len(accepted) == len(everything) and len(answers) == USERS * JOBS_EACH  # 0 lost
    assert all(job.state == JobState.DONE for job in everything), [(j.id, j.error) for j in everything]
    for job in everything:  # 0 posted twice
        showing = [
            m["id"]
            for m in fake.messages.values()
            if any(a["filename"].startswith(f"dreamcord_{job.id}.") for a in m["attachments"])
        ]
        assert showing == [str(job.message_id)], (job.id, showing)
    # Nothing kept per job once it ended: no follower, no tracked message, no handle, no ETA entry.
    services = bot.services
    assert (
        not services.jobs.followers
        and not services.jobs.followers._shown
        and not services.jobs._files_in_flight
    )
    assert not pool._handles and not pool.eta.running
