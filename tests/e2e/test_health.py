"""The health port against the real bot: /healthz says what is wrong, /metrics counts jobs in the
Prometheus text format, and `dreamcord health` (the HEALTHCHECK command) reads /healthz."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from bot.health import HealthServer
from bot.health_check import check_health
from storage.db import create_engine, session_factory
from tests.e2e.conftest import Stack
from tests.e2e.test_permissions import imagine_in, job_of

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def health(stack: Stack) -> AsyncIterator[str]:
    server = HealthServer(stack.bot, stack.jobs.pool, stack.jobs.sessions, "127.0.0.1", 0)
    port = await server.start()
    yield f"http://127.0.0.1:{port}"
    await server.stop()


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_healthz_is_ok_while_the_bot_runs(stack: Stack, health: str) -> None:
    status, body = await _get(f"{health}/healthz")
    assert status == 200, body
    assert '"ok": true' in body


async def test_metrics_count_jobs_by_kind_and_state_and_show_the_queue(stack: Stack, health: str) -> None:
    before = _samples((await _get(f"{health}/metrics"))[1])
    done = ("dreamcord_jobs_finished_total", (("kind", "imagine"), ("state", "done")))
    submitted = ("dreamcord_jobs_submitted_total", (("kind", "imagine"),))
    grid = await imagine_in(stack, stack.fake.add_user("metered"), "a red circle --seed 2 --steps 2")
    assert await stack.job_message_id(job_of(grid))  # recorded as posted: its follower has counted it

    status, text = await _get(f"{health}/metrics")
    after = _samples(text)
    assert status == 200
    assert after[done] == before.get(done, 0) + 1
    assert after[submitted] == before.get(submitted, 0) + 1
    assert after[("dreamcord_job_run_seconds_count", (("kind", "imagine"),))] >= 1
    assert after[("dreamcord_queue_depth", (("lane", "interactive"),))] == 0
    assert after[("dreamcord_workers_alive", (("lane", "interactive"),))] == 1
    assert ("dreamcord_worker_restarts_total", ()) in after
    assert ("dreamcord_batched_jobs_total", ()) in after
    assert ("process_resident_memory_bytes", ()) in after  # prometheus-client's own, for free


async def test_a_database_that_does_not_answer_is_unhealthy_and_the_check_says_so(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "db").mkdir()  # a folder where the database file should be: no query can run
    broken = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db'}")
    server = HealthServer(stack.bot, stack.jobs.pool, session_factory(broken), "127.0.0.1", 0)
    port = await server.start()
    try:
        status, body = await _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 503
        assert "the database does not answer" in body
        settings = stack.settings.model_copy(update={"health_port": port})
        assert await asyncio.to_thread(check_health, settings) == 1  # as HEALTHCHECK runs it
        assert capsys.readouterr().out.strip() == "unhealthy: the database does not answer"
    finally:
        await server.stop()
        await broken.dispose()
    assert await asyncio.to_thread(check_health, settings) == 1
    assert "unhealthy: nothing answers at http://127.0.0.1" in capsys.readouterr().out
