"""Bans and quotas as the job service checks them, straight against the database."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.admin import Banned, QuotaExceeded, check_may_submit
from storage import admin as store
from storage import jobs as job_store
from storage.models import JobState, User

pytestmark = pytest.mark.both_databases

GUILD, OTHER_GUILD, USER = 1, 2, 42


async def test_a_server_ban_applies_in_that_server_only(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        assert await store.ban(session, GUILD, USER, by=7, reason="spam")
        assert not await store.ban(session, GUILD, USER, by=7, reason="again")
    async with sessions() as session:
        with pytest.raises(Banned, match=r"\(spam\)"):
            await check_may_submit(session, USER, GUILD, 10)
        await check_may_submit(session, USER, OTHER_GUILD, 10)
        await check_may_submit(session, USER, None, 10)


async def test_the_owners_global_ban_applies_everywhere(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        (await job_store.ensure_user(session, USER)).banned = True
    async with sessions() as session:
        for guild in (GUILD, None):
            with pytest.raises(Banned, match="owner"):
                await check_may_submit(session, USER, guild, 10)


async def test_max_queued_counts_active_jobs_and_never_exceeds_the_bots_limit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        (await store.guild_settings(session, GUILD)).max_queued_per_user = 5
        first = await job_store.create_job(
            session, owner_id=USER, kind="imagine", spec_json="{}", guild_id=GUILD
        )
        await job_store.create_job(session, owner_id=USER, kind="imagine", spec_json="{}", guild_id=GUILD)
    async with sessions() as session:
        with pytest.raises(QuotaExceeded, match="allows 2 jobs queued"):
            await check_may_submit(session, USER, GUILD, bot_max_queued=2)  # the bot's 2 beats the server's 5
        await check_may_submit(session, USER, GUILD, bot_max_queued=3)
    async with sessions.begin() as session:
        await job_store.finish_job(session, first.id, JobState.DONE)
        assert (await session.get(User, USER)) is not None
    async with sessions() as session:
        await check_may_submit(session, USER, GUILD, bot_max_queued=2)  # a finished job frees its place


@pytest.mark.parametrize(
    ("prompt", "blocked"),
    [
        ("a Gory scene", "gory"),
        ("a gorynych dragon", None),  # whole words only
        ("blood red sky", "re:bl(oo|ee)d"),
        ("a blue sky", None),
    ],
)
def test_blocked_terms_match_whole_words_or_patterns(prompt: str, blocked: str | None) -> None:
    from bot.admin import blocked_term

    assert blocked_term(prompt, ["gory", "re:bl(oo|ee)d"]) == blocked


def test_a_bad_pattern_is_refused_when_it_is_added() -> None:
    from bot.admin import check_term
    from generation.errors import DreamcordError

    with pytest.raises(DreamcordError, match="not a valid regular expression"):
        check_term("re:(unclosed")
    assert check_term("  spaced  ") == "spaced"


async def test_jobs_run_relaxed_once_the_fast_allowance_is_used(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from bot.admin import runs_relaxed

    async with sessions.begin() as session:
        (await store.guild_settings(session, GUILD)).fast_seconds_per_day = 60
        job = await job_store.create_job(
            session, owner_id=USER, kind="imagine", spec_json="{}", guild_id=GUILD
        )
        await job_store.record_gpu_time(session, job, 45.0)
    async with sessions() as session:
        assert not await runs_relaxed(session, USER, GUILD)
        assert not await runs_relaxed(session, USER, OTHER_GUILD)  # no allowance set there: all fast
    async with sessions.begin() as session:
        job = await job_store.create_job(
            session, owner_id=USER, kind="imagine", spec_json="{}", guild_id=OTHER_GUILD
        )
        await job_store.record_gpu_time(session, job, 20.0)  # GPU time counts wherever it was spent
    async with sessions() as session:
        assert await runs_relaxed(session, USER, GUILD)
        assert (await session.get(User, USER)).gpu_seconds == 65.0  # type: ignore[union-attr]


async def test_an_admin_cancelling_someone_elses_job_is_in_the_audit_log(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from unittest.mock import MagicMock

    from bot.jobs import JobNotFound, JobService
    from bot.visibility import Viewer

    async with sessions.begin() as session:
        job = await job_store.create_job(
            session, owner_id=USER, kind="imagine", spec_json="{}", guild_id=GUILD
        )
    pool = MagicMock()
    pool.cancel.return_value = True
    service = JobService(sessions, pool, MagicMock())
    with pytest.raises(JobNotFound):
        await service.cancel(job.id, Viewer(7, GUILD))  # not an admin: not theirs to cancel
    with pytest.raises(JobNotFound):  # an admin of another server may not either
        await service.cancel(job.id, Viewer(7, GUILD + 1, is_admin=True))
    await service.cancel(job.id, Viewer(7, GUILD, is_admin=True))
    async with sessions() as session:
        (entry,) = await store.audit_log(session, GUILD)
    assert (entry.actor_id, entry.action, entry.target, entry.detail) == (
        7,
        "cancel",
        str(USER),
        f"job {job.id}",
    )


async def test_the_daily_quota_counts_what_ran_not_what_was_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        ids = []
        for _ in range(6):
            job = await job_store.create_job(
                session, owner_id=USER, kind="imagine", spec_json="{}", guild_id=GUILD
            )
            ids.append(job.id)
    ran, _waiting, refused, failed, cancelled_early, cancelled_late = ids
    async with sessions.begin() as session:
        for job_id in (ran, failed, cancelled_late):
            await job_store.mark_running(session, job_id)
        await job_store.finish_job(session, ran, JobState.DONE)
        await job_store.finish_job(session, refused, JobState.FAILED, "the queue is full")
        await job_store.finish_job(session, failed, JobState.FAILED, "the worker crashed")
        await job_store.finish_job(session, cancelled_early, JobState.CANCELLED)
        await job_store.finish_job(session, cancelled_late, JobState.CANCELLED)
    async with sessions() as session:
        # ran, _waiting (it will run) and cancelled_late (it ran for a while) count; the rest does not.
        assert await store.jobs_since(session, USER, GUILD, store.day_ago()) == 3
