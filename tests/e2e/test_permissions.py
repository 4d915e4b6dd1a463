"""Who may see and do what (#16), end to end: one visibility rule on every command and button that
reads a job, one ban gate on every interaction, and messages that ping nobody unless meant to."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from storage.models import Job
from tests.e2e.conftest import Stack
from tests.e2e.helpers import custom_ids, ephemeral_reply, finished
from tests.fakediscord.server import FakeDiscord, Interaction, Place

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Every command that takes a job number, with what else it needs.
JOB_COMMANDS: list[tuple[str, dict[str, Any]]] = [
    ("vary", {}),
    ("vary", {"region": "0, 0, 50, 50"}),
    ("upscale", {}),
    ("outpaint", {"operation": "zoom"}),
    ("show", {}),
    ("show", {"index": 1}),
    ("info", {}),
    ("describe", {}),
]


async def imagine_in(stack: Stack, user: int, prompt: str, place: Place | None = None) -> dict[str, Any]:
    interaction = await stack.fake.slash(user, "imagine", {"prompt": prompt}, place=place)
    return await finished(stack, interaction)


def job_of(message: dict[str, Any]) -> int:
    return int(custom_ids(message)[0].split(":")[2])


async def jobs_of(stack: Stack, user: int) -> int:
    async with stack.jobs.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Job).where(Job.owner_id == user)) or 0


def public_messages(fake: FakeDiscord) -> list[dict[str, Any]]:
    return [m for m in fake.channel_messages() if not m["flags"] & 64]


def not_visible(job: int) -> str:
    return f"job {job} has no result you can see here"


async def refused_quietly(stack: Stack, interaction: Interaction) -> str:
    """The ephemeral answer, after checking that no public message of the interaction is left."""
    reply = await ephemeral_reply(stack, interaction)
    original = stack.fake.message(interaction.original_id)
    assert original is None or original["flags"] & 64  # the public "thinking…" was removed
    assert interaction.modal is None  # and no form was opened
    return reply


async def test_jobs_from_a_dm_or_another_server_are_refused_by_every_command(stack: Stack) -> None:
    fake = stack.fake
    alice, mallory = fake.add_user("alice"), fake.add_user("mallory")
    other = await fake.add_guild()
    private = await imagine_in(stack, alice, "a secret red circle --seed 1 --steps 2", fake.dm(alice))
    elsewhere = await imagine_in(stack, alice, "a far green ring --seed 2 --steps 2", other)
    public_before = len(public_messages(fake))
    for message in (private, elsewhere):
        job = job_of(message)
        for command, options in JOB_COMMANDS:
            interaction = await fake.slash(mallory, command, {"job": job, **options})
            assert await refused_quietly(stack, interaction) == not_visible(job), (command, options)
    assert await jobs_of(stack, mallory) == 0
    assert len(public_messages(fake)) == public_before  # nothing of alice's was posted here
    mine = await fake.slash(alice, "show", {"job": job_of(private)})  # the owner may show it anywhere
    await fake.wait_until(lambda: (m := fake.message(mine.original_id)) and m["attachments"])
    never = await fake.slash(
        mallory, "show", {"job": 999_999}
    )  # the same words for a job that does not exist
    assert await refused_quietly(stack, never) == not_visible(999_999)


async def test_forged_buttons_for_someone_elses_dm_job_are_refused(stack: Stack) -> None:
    fake = stack.fake
    alice, mallory = fake.add_user("alice"), fake.add_user("mallory")
    grid = await imagine_in(stack, alice, "a secret blue square --seed 3 --steps 2", fake.dm(alice))
    single = await finished(stack, await fake.press(alice, int(grid["id"]), custom_ids(grid)[0]))
    job = job_of(grid)
    for source in (grid, single):
        forged = fake.forge_message(fake.main, source["components"])
        for custom_id in custom_ids(forged):
            pressed = await fake.press(mallory, int(forged["id"]), custom_id)
            assert await refused_quietly(stack, pressed) == not_visible(job), custom_id
    assert await jobs_of(stack, mallory) == 0


async def test_a_job_made_in_a_private_channel_is_seen_by_its_owner_and_admins_only(stack: Stack) -> None:
    fake = stack.fake
    alice, mallory, boss = fake.add_user("alice"), fake.add_user("mallory"), fake.add_user("boss", admin=True)
    hidden = await fake.add_private_channel()
    grid = await imagine_in(stack, alice, "a hidden yellow ring --seed 4 --steps 2", hidden)
    job = job_of(grid)
    refused = await fake.slash(mallory, "show", {"job": job})
    assert await refused_quietly(stack, refused) == not_visible(job)
    for user in (alice, boss):
        shown = await fake.slash(user, "info", {"job": job})
        assert "hidden yellow ring" in await ephemeral_reply(stack, shown)
    public = await imagine_in(stack, alice, "a plain red circle --seed 5 --steps 2")  # the same server, seen
    assert f"Picture #1 of job {job_of(public)}" in await ephemeral_reply(
        stack, await fake.slash(mallory, "info", {"job": job_of(public)})
    )


async def test_a_banned_user_is_stopped_at_every_button_and_form(stack: Stack) -> None:
    fake = stack.fake
    boss, carol, dave = fake.add_user("boss", admin=True), fake.add_user("carol"), fake.add_user("dave")
    grid = await imagine_in(stack, carol, "a red circle --seed 6 --steps 2")
    single = await finished(stack, await fake.press(carol, int(grid["id"]), custom_ids(grid)[1]))
    region = next(c for c in custom_ids(single) if c.startswith("dc:vr:"))
    form = await fake.press(dave, int(single["id"]), region)  # opened before the ban, sent after it
    await fake.wait_until(lambda: form.modal is not None)
    await stack.bot.services.admin.ban(fake.guild_id, boss, dave, "spam")
    public_before = len(public_messages(fake))
    for message in (grid, single):
        for custom_id in custom_ids(message):
            pressed = await fake.press(dave, int(message["id"]), custom_id)
            assert "banned from using dreamcord here (spam)" in await refused_quietly(stack, pressed), (
                custom_id
            )
    submitted = await fake.submit_modal(dave, form, {})
    assert "banned" in await refused_quietly(stack, submitted)
    assert len(public_messages(fake)) == public_before and await jobs_of(stack, dave) == 0
    asked = await fake.slash(dave, "forget")  # erasing one's own data stays open
    assert "cannot be undone" in await ephemeral_reply(stack, asked)


def pings(fake: FakeDiscord) -> list[str]:
    return [ping for _, ping, _ in fake.pings]


async def test_prompts_with_mentions_ping_nobody(stack: Stack) -> None:
    fake = stack.fake
    eve = fake.add_user("eve")
    prompt = "@everyone @here look ``` a red circle --seed 7 --steps 2"
    grid = await imagine_in(stack, eve, prompt)
    assert "@everyone" in grid["content"]  # shown as typed, and yet…
    single = await finished(stack, await fake.press(eve, int(grid["id"]), custom_ids(grid)[2]))
    await finished(stack, await fake.press(eve, int(single["id"]), custom_ids(single)[0]))  # Vary (Subtle)
    shown = await fake.slash(eve, "show", {"job": job_of(grid), "index": 1})
    await fake.wait_until(lambda: fake.message(shown.original_id))
    details = fake.message(shown.original_id)["content"]  # type: ignore[index]
    assert details.count("```") == 2  # the prompt's ``` cannot close the parameters' code block
    assert pings(fake) == []  # …nobody was pinged, the owner's own <@mention> included


async def test_a_result_posted_after_the_token_expired_pings_its_owner_only(stack: Stack) -> None:
    fake = stack.fake
    fake.token_lifetime = 0.0  # every webhook call fails: the result goes to the channel
    eve = fake.add_user("eve")
    await fake.slash(eve, "imagine", {"prompt": "@everyone @here a red circle --seed 8 --steps 2"})
    posted = await fake.wait_until(
        lambda: next((m for m in fake.channel_messages() if m["attachments"] and m["nonce"]), None),
        timeout=60,
    )
    assert posted["pings"] == [f"user:{eve}"] and pings(fake) == [f"user:{eve}"]
