"""/settings (personal defaults), /info and /admin (model, quotas, bans, audit log), end to end."""

from __future__ import annotations

import pytest

from storage.models import Job
from tests.e2e.conftest import Stack
from tests.e2e.helpers import count, custom_ids, ephemeral_reply, finished, image_of
from tests.e2e.test_imagine import _imagine

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_personal_defaults_apply_until_a_flag_overrides_them(stack: Stack) -> None:
    fake = stack.fake
    alice = fake.add_user("alice")
    saved = await fake.slash(alice, "settings set", {"aspect": "3:2", "steps": 3})
    assert "`--ar 3:2 --steps 3`" in await ephemeral_reply(stack, saved)
    more = await fake.slash(alice, "settings set", {"negative": "blur"})
    assert "`--ar 3:2 --steps 3 --no blur`" in await ephemeral_reply(stack, more)  # the others stay
    wide = await _imagine(stack, alice, "a cat --seed 1")
    assert image_of(fake, wide["attachments"][0]).size == (144, 96)  # four 72x48 pictures
    square = await _imagine(stack, alice, "a cat --seed 1 --ar 1:1")
    assert image_of(fake, square["attachments"][0]).size == (128, 128)  # a typed flag wins
    assert "none" in await ephemeral_reply(stack, await fake.slash(alice, "settings reset"))
    assert "unknown model 'nothere'" in await ephemeral_reply(
        stack, await fake.slash(alice, "settings set", {"model": "nothere"})
    )


async def test_admin_commands_are_for_administrators_only(stack: Stack) -> None:
    fake = stack.fake
    bob = fake.add_user("bob")
    for command, options in [
        ("admin ban", {"user": bob}),
        ("admin quota", {"daily_jobs": 1}),
        ("admin log", {}),
    ]:
        reply = await ephemeral_reply(stack, await fake.slash(bob, command, options))
        assert "Only server administrators" in reply
    assert "Nothing yet" in await ephemeral_reply(
        stack, await fake.slash(fake.add_user("root", admin=True), "admin log")
    )


async def test_a_banned_user_is_refused_everywhere_until_unbanned(stack: Stack) -> None:
    fake = stack.fake
    boss, carol, dave = fake.add_user("boss", admin=True), fake.add_user("carol"), fake.add_user("dave")
    grid = await _imagine(stack, carol, "a red circle --seed 3 --steps 2")
    jobs_before = await count(stack, Job)
    banned = await fake.slash(boss, "admin ban", {"user": dave, "reason": "spam"})
    assert "is now banned" in await ephemeral_reply(stack, banned)
    refused = await fake.slash(dave, "imagine", {"prompt": "a cat"})
    assert "banned from using dreamcord here (spam)" in await ephemeral_reply(stack, refused)
    pressed = await fake.press(dave, int(grid["id"]), custom_ids(grid)[4])  # reroll someone else's grid
    assert "banned" in await ephemeral_reply(stack, pressed)
    assert "banned" in await ephemeral_reply(stack, await fake.slash(dave, "library list"))
    assert await count(stack, Job) == jobs_before  # nothing was queued for him
    assert "<@" in await ephemeral_reply(stack, await fake.slash(boss, "admin bans"))
    assert "may use the bot again" in await ephemeral_reply(
        stack, await fake.slash(boss, "admin unban", {"user": dave})
    )
    await _imagine(stack, dave, "a cat --steps 2")
    log = await ephemeral_reply(stack, await fake.slash(boss, "admin log"))
    assert log.index("unban") < log.index(f"ban <@{dave}>: spam")  # newest first


async def test_a_daily_quota_refuses_the_job_over_it(stack: Stack) -> None:
    fake = stack.fake
    boss, erin = fake.add_user("boss2", admin=True), fake.add_user("erin")
    set_quota = await fake.slash(boss, "admin quota", {"daily_jobs": 1, "max_queued": 2})
    assert "2 jobs queued or running per person, 1 per day" in await ephemeral_reply(stack, set_quota)
    await _imagine(stack, erin, "a cat --steps 2")
    jobs_before = await count(stack, Job)
    over = await fake.slash(erin, "imagine", {"prompt": "a dog --steps 2"})
    assert "allows 1 jobs per person per 24 hours" in await ephemeral_reply(stack, over)
    assert await count(stack, Job) == jobs_before
    info = await ephemeral_reply(stack, await fake.slash(erin, "info"))
    assert "2 jobs queued or running per person, 1 per day, all fast" in info


async def test_admin_model_sets_the_servers_default_and_info_shows_it(stack: Stack) -> None:
    fake = stack.fake
    boss = fake.add_user("boss3", admin=True)
    assert "unknown model 'nothere'" in await ephemeral_reply(
        stack, await fake.slash(boss, "admin model", {"name": "nothere"})
    )
    assert "default model is now **tiny**" in await ephemeral_reply(
        stack, await fake.slash(boss, "admin model", {"name": "tiny"})
    )
    info = await ephemeral_reply(stack, await fake.slash(boss, "info"))
    assert "**tiny** (default here)" in info and "interactive on cpu" in info
    result = await finished(stack, await fake.slash(boss, "imagine", {"prompt": "a cat --steps 2"}))
    assert "tiny" in result["content"]


async def test_blocked_terms_refuse_prompts_and_buttons_alike(stack: Stack) -> None:
    fake = stack.fake
    boss, gina = fake.add_user("boss4", admin=True), fake.add_user("gina")
    grid = await _imagine(stack, gina, "a gore-free cat --steps 2")  # before the block
    added = await fake.slash(boss, "admin block", {"term": "gore"})
    assert "`gore`" in await ephemeral_reply(stack, added)
    jobs_before = await count(stack, Job)
    refused = await fake.slash(gina, "imagine", {"prompt": "so much GORE"})
    assert "does not allow “gore” in prompts" in await ephemeral_reply(stack, refused)
    rerolled = await fake.press(gina, int(grid["id"]), custom_ids(grid)[4])  # the old prompt has it too
    assert "does not allow" in await ephemeral_reply(stack, rerolled)
    assert await count(stack, Job) == jobs_before
    assert "nothing" in await ephemeral_reply(
        stack, await fake.slash(boss, "admin unblock", {"term": "gore"})
    )


async def test_past_the_fast_allowance_jobs_run_in_relax_mode(stack: Stack) -> None:
    from storage import jobs as job_store
    from storage.db import write_transaction

    fake = stack.fake
    boss, ivy = fake.add_user("boss5", admin=True), fake.add_user("ivy")
    set_quota = await fake.slash(boss, "admin quota", {"fast_seconds": 30})
    assert "30 fast GPU-seconds a day, then relax" in await ephemeral_reply(stack, set_quota)
    first = await _imagine(stack, ivy, "a cat --turbo")  # Turbo: a Fast mode, while she has Fast time
    assert "relax" not in first["content"]
    # As if her jobs had used 40 GPU-seconds today; a write unit as the bot's own are (BEGIN IMMEDIATE:
    # a deferred one that reads first can meet "database is locked" while the bot records her job).
    async with write_transaction(stack.jobs.sessions) as session:
        job = await job_store.get_job(session, int(custom_ids(first)[0].split(":")[2]))
        assert job is not None and job.gpu_seconds is not None and job.gpu_seconds > 0  # measured
        await job_store.record_gpu_time(session, job, 40.0)
    relaxed = await fake.slash(ivy, "imagine", {"prompt": "a dog --steps 2"})
    await fake.wait_until(
        lambda: "relax mode" in (fake.message(relaxed.original_id) or {}).get("content", "")
    )
    result = await finished(stack, relaxed)
    job = await stack.jobs.get_job(int(custom_ids(result)[0].split(":")[2]))
    assert job is not None and job.relax
    turbo = await fake.slash(ivy, "imagine", {"prompt": "a dog --turbo"})
    assert "--turbo runs on Fast time" in await ephemeral_reply(stack, turbo)
