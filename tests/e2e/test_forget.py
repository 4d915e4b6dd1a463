"""/forget that cannot be raced and leaves nothing behind (#16), end to end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.visibility import Viewer
from storage import privacy as privacy_store
from tests.e2e.conftest import Stack
from tests.e2e.helpers import custom_ids, ephemeral_reply, finished
from tests.e2e.test_permissions import imagine_in, job_of, jobs_of
from tests.fakediscord.server import Interaction

pytestmark = pytest.mark.asyncio(loop_scope="module")


def button(stack: Stack, asked: Interaction, label: str) -> str:
    message = stack.fake.message(asked.original_id)
    assert message is not None
    return next(
        c["custom_id"] for row in message["components"] for c in row["components"] if c["label"] == label
    )


async def ask_to_forget(stack: Stack, user: int) -> Interaction:
    asked = await stack.fake.slash(user, "forget")
    assert "cannot be undone" in await ephemeral_reply(stack, asked)
    return asked


async def confirm(stack: Stack, user: int, asked: Interaction) -> Interaction:
    assert asked.original_id is not None
    return await stack.fake.press(user, asked.original_id, button(stack, asked, "Delete everything"))


async def done(stack: Stack, asked: Interaction) -> str:
    fake = stack.fake
    await fake.wait_until(
        lambda: "Done: deleted" in (fake.message(asked.original_id) or {}).get("content", "")
    )
    return fake.message(asked.original_id)["content"]  # type: ignore[index]


async def test_forget_deletes_every_message_posted_for_the_user_or_showing_their_pictures(
    stack: Stack,
) -> None:
    fake = stack.fake
    carol, dave = fake.add_user("carol"), fake.add_user("dave")
    grid = await imagine_in(stack, carol, "a red circle --seed 1 --steps 2")
    hers = await finished(stack, await fake.press(carol, int(grid["id"]), custom_ids(grid)[0]))  # U1
    his = await finished(stack, await fake.press(dave, int(grid["id"]), custom_ids(grid)[1]))  # U2 by dave
    shown = await fake.slash(dave, "show", {"job": job_of(grid)})
    await fake.wait_until(lambda: (m := fake.message(shown.original_id)) and m["attachments"])
    cancelled = await fake.slash(carol, "imagine", {"prompt": "a slow blue ring --steps 150"})
    await fake.wait_until(lambda: "queued" in (fake.message(cancelled.original_id) or {}).get("content", ""))
    (slow,) = await stack.jobs.active_jobs_of(carol)
    await stack.jobs.cancel(slow.id, Viewer(carol, fake.guild_id))
    await fake.wait_until(lambda: "cancelled" in fake.message(cancelled.original_id)["content"], timeout=60)  # type: ignore[index]
    own = await imagine_in(stack, dave, "a green square --seed 2 --steps 2")

    asked = await ask_to_forget(stack, carol)
    await confirm(stack, carol, asked)
    assert "5 messages" in await done(stack, asked)
    gone: list[dict[str, Any] | None] = [grid, hers, his, fake.message(shown.original_id)]
    assert all(fake.message(int(m["id"])) is None for m in gone if m)  # type: ignore[index]
    assert fake.message(cancelled.original_id) is None  # the "cancelled" message too
    assert fake.message(int(own["id"])) is not None  # dave's own result stays


async def test_a_submit_while_forget_runs_is_refused_and_nothing_is_left(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = stack.fake
    carol = fake.add_user("carol")
    await imagine_in(stack, carol, "a red circle --seed 3 --steps 2")
    deleting = asyncio.Event()
    delete_rows = privacy_store.delete_user_rows

    async def slow_delete(session: Any, user_id: int) -> None:  # widen the race window to 0.5 s
        deleting.set()
        await asyncio.sleep(0.5)
        await delete_rows(session, user_id)

    monkeypatch.setattr(privacy_store, "delete_user_rows", slow_delete)
    asked = await ask_to_forget(stack, carol)
    await confirm(stack, carol, asked)
    await asyncio.wait_for(deleting.wait(), 30)
    racing = await fake.slash(carol, "imagine", {"prompt": "a blue ring --seed 4 --steps 2"})
    assert "being deleted" in await ephemeral_reply(stack, racing)
    assert "Done: deleted 1 jobs" in await done(stack, asked)
    assert await jobs_of(stack, carol) == 0
    assert fake.message(racing.original_id) is None or fake.message(racing.original_id)["flags"] & 64  # type: ignore[index]
    after = await imagine_in(stack, carol, "a blue ring --seed 4 --steps 2")  # once done, she starts afresh
    assert after["attachments"] and await jobs_of(stack, carol) == 1


async def test_a_second_click_on_delete_everything_is_answered(stack: Stack) -> None:
    fake = stack.fake
    erin = fake.add_user("erin")
    await imagine_in(stack, erin, "a red circle --seed 5 --steps 2")
    asked = await ask_to_forget(stack, erin)
    delete = button(stack, asked, "Delete everything")
    assert asked.original_id is not None
    first, second = await asyncio.gather(
        fake.press(erin, asked.original_id, delete), fake.press(erin, asked.original_id, delete)
    )
    await done(stack, asked)
    await fake.wait_until(lambda: first.response_type and second.response_type)
    answers = sorted([first, second], key=lambda click: click.response_type or 0)
    assert answers[0].response_type == 4  # the second click: a short line, not "interaction failed"
    assert (await ephemeral_reply(stack, answers[0])).startswith("Already answered")
    late = await fake.press(erin, asked.original_id, delete)  # a click from a stale client, later still
    assert (await ephemeral_reply(stack, late)).startswith("Already answered")
