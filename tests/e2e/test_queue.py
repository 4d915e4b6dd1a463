"""Cancelling: the Cancel button on a running job, and /queue."""

from __future__ import annotations

import pytest

from bot.visibility import Viewer
from generation.prompt import parse_prompt
from generation.specs import imagine_spec
from storage.models import JobState
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_only_the_owner_can_press_cancel_and_then_it_stops(stack: Stack) -> None:
    fake = stack.fake
    owner, stranger = fake.add_user("owner"), fake.add_user("stranger")
    interaction = await fake.slash(owner, "imagine", {"prompt": "a cat --seed 1 --steps 150"})

    def cancel_button() -> str | None:
        message = fake.message(interaction.original_id)
        ids = [c["custom_id"] for row in (message or {}).get("components", []) for c in row["components"]]
        return next((i for i in ids if i.startswith("dc:c:")), None)

    custom_id = await fake.wait_until(cancel_button)
    job_id = int(custom_id.split(":")[2])
    refused = await fake.press(stranger, interaction.original_id, custom_id)  # type: ignore[arg-type]
    await fake.wait_until(lambda: refused.response_type is not None)
    assert refused.ephemeral and "not one of yours" in fake.message(refused.original_id)["content"]  # type: ignore[index]

    accepted = await fake.press(owner, interaction.original_id, custom_id)  # type: ignore[arg-type]
    await fake.wait_until(
        lambda: "cancelled" in (fake.message(interaction.original_id) or {}).get("content", ""), timeout=30
    )
    assert accepted.ephemeral
    final = fake.message(interaction.original_id)
    assert final is not None and not final["components"] and not final["attachments"]
    job = await stack.jobs.get_job(job_id)
    assert job is not None and job.state == JobState.CANCELLED


async def test_queue_lists_my_jobs_and_cancels_one(stack: Stack) -> None:
    fake = stack.fake
    me = fake.add_user("queuer")
    empty = await fake.slash(me, "queue")
    await fake.wait_until(lambda: empty.original_id is not None)
    assert "no jobs" in fake.message(empty.original_id)["content"]  # type: ignore[index]

    # Someone else's long job holds the only worker, so mine wait in a known order.
    blocker_spec = imagine_spec(parse_prompt("a cat --steps 150"), stack.settings.model("tiny"), 64)
    blocker = await stack.jobs.submit(
        owner_id=1, spec=blocker_spec.model_copy(update={"width": 128, "height": 128})
    )
    first = await fake.slash(me, "imagine", {"prompt": "a dog --seed 3 --steps 2"})
    second = await fake.slash(me, "imagine", {"prompt": "a dog --seed 4 --steps 2"})
    for interaction in (first, second):  # persisted: the message names its job
        await fake.wait_until(
            lambda i=interaction: "job " in (fake.message(i.original_id) or {}).get("content", "")
        )
    mine = await stack.jobs.active_jobs_of(me)
    assert len(mine) == 2
    listing = await fake.slash(me, "queue")
    await fake.wait_until(lambda: listing.original_id is not None)
    text = fake.message(listing.original_id)["content"]  # type: ignore[index]
    assert f"job {mine[0].id} (imagine): waiting, position 1" in text
    assert f"job {mine[1].id} (imagine): waiting, position 2" in text

    for job in mine:
        cancel = await fake.slash(me, "queue", {"cancel": job.id})
        await fake.wait_until(lambda c=cancel: c.original_id is not None)
    for interaction in (first, second):
        await fake.wait_until(
            lambda i=interaction: "cancelled" in fake.message(i.original_id)["content"], timeout=30
        )
    assert await stack.jobs.active_jobs_of(me) == []
    await stack.jobs.cancel(blocker.job_id, Viewer(1, None))
