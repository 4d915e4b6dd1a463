"""/imagine and its buttons, end to end."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from generation.specs import spec_from_json
from storage.models import Job
from tests.e2e.conftest import Stack
from tests.e2e.helpers import EPHEMERAL, custom_ids, ephemeral_reply, finished, image_of
from tests.e2e.test_forget import button

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _imagine(stack: Stack, user: int, prompt: str) -> dict[str, Any]:
    fake = stack.fake
    interaction = await fake.slash(user, "imagine", {"prompt": prompt})
    await fake.wait_until(
        lambda: (m := fake.message(interaction.original_id)) and m["attachments"], timeout=60
    )
    assert interaction.response_type == 5  # deferred within the deadline, then edited
    return fake.message(interaction.original_id)  # type: ignore[return-value]


async def test_imagine_answers_with_a_grid_and_buttons(stack: Stack) -> None:
    fake = stack.fake
    alice = fake.add_user("alice")
    message = await _imagine(stack, alice, "a red circle --seed 5 --steps 3")
    assert message["edits"] >= 2  # "queued…" then the result
    assert image_of(fake, message["attachments"][0]).size == (128, 128)
    ids = custom_ids(message)
    job_id = int(ids[0].split(":")[2])
    assert ids == [f"dc:u:{job_id}:{i}" for i in range(4)] + [f"dc:r:{job_id}:0"] + [
        f"dc:v:{job_id}:{i}" for i in range(4)
    ] + [f"dc:del:{job_id}"]  # ten buttons: U1-U4 and reroll on the first row, V1-V4 and Delete below
    assert [len(row["components"]) for row in message["components"]] == [5, 5]
    assert "a red circle" in message["content"] and "seeds 5–8" in message["content"]
    assert await stack.job_message_id(job_id) == int(message["id"])
    job = await stack.jobs.get_job(job_id)
    assert job is not None and job.owner_id == alice


async def test_u_button_posts_that_image_alone(stack: Stack) -> None:
    fake = stack.fake
    bob = fake.add_user("bob")
    grid_message = await _imagine(stack, bob, "a blue square --seed 9 --steps 2")
    grid = image_of(fake, grid_message["attachments"][0])
    press = await fake.press(bob, int(grid_message["id"]), custom_ids(grid_message)[1])
    await fake.wait_until(lambda: press.original_id and fake.message(press.original_id)["attachments"])
    single = image_of(fake, fake.message(press.original_id)["attachments"][0])  # type: ignore[index]
    assert np.array_equal(np.asarray(single), np.asarray(grid.crop((64, 0, 128, 64))))


async def test_reroll_still_works_after_the_bot_restarts(stack: Stack) -> None:
    fake = stack.fake
    carol = fake.add_user("carol")
    grid_message = await _imagine(stack, carol, "a green star --seed 1 --steps 2")
    await stack.restart_bot()  # a new Bot instance: the buttons must not depend on memory
    dave = fake.add_user("dave")
    press = await fake.press(dave, int(grid_message["id"]), custom_ids(grid_message)[4])
    await fake.wait_until(
        lambda: press.original_id and fake.message(press.original_id)["attachments"], timeout=60
    )
    rerolled = fake.message(press.original_id)
    assert rerolled is not None and f"<@{dave}>" in rerolled["content"]  # whoever presses owns the new job
    assert "seeds 1–4" not in rerolled["content"]


async def test_v3_after_a_restart_gives_variations_of_image_3(stack: Stack) -> None:
    fake = stack.fake
    erica = fake.add_user("erica")
    grid_message = await _imagine(stack, erica, "a yellow ring --seed 20 --steps 2")
    grid_job = int(custom_ids(grid_message)[0].split(":")[2])
    await stack.restart_bot()
    press = await fake.press(erica, int(grid_message["id"]), f"dc:v:{grid_job}:2")
    await fake.wait_until(
        lambda: press.original_id and fake.message(press.original_id)["attachments"], timeout=60
    )
    varied = fake.message(press.original_id)
    assert varied is not None and "variations (strong)" in varied["content"]
    assert image_of(fake, varied["attachments"][0]).size == (128, 128)
    assert len(custom_ids(varied)) == 10  # a variation grid has the same buttons
    vary_job = await stack.jobs.get_job(int(custom_ids(varied)[0].split(":")[2]))
    third = (await stack.jobs.images_of(grid_job))[2]
    assert vary_job is not None and vary_job.parent_job_id == grid_job
    assert f'"source":"{third.file_hash}"' in vary_job.spec_json


async def test_bad_prompt_gets_an_ephemeral_error_and_queues_nothing(stack: Stack) -> None:
    fake = stack.fake
    erin = fake.add_user("erin")
    async with stack.jobs.sessions() as session:
        before = await session.scalar(select(func.count()).select_from(Job))
    interaction = await fake.slash(erin, "imagine", {"prompt": "a cat --sharpness 5"})
    await fake.wait_until(lambda: interaction.response_type is not None)
    assert interaction.response_type == 4 and interaction.ephemeral
    reply = fake.message(interaction.original_id)
    assert reply is not None and "unknown flag --sharpness" in reply["content"]
    async with stack.jobs.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == before


async def test_a_pasted_midjourney_prompt_runs_and_says_which_options_changed_nothing(stack: Stack) -> None:
    fake = stack.fake
    mia = fake.add_user("mia")
    interaction = await fake.slash(
        mia, "imagine", {"prompt": "a red circle --v 6.1 --stylize 250 --style raw --q 2 --seed 3 --steps 2"}
    )
    message = await finished(stack, interaction)
    assert "a red circle" in message["content"] and "seeds 3–6" in message["content"]
    await fake.wait_until(lambda: interaction.followup_ids, timeout=30)
    note = fake.message(interaction.followup_ids[-1])
    assert note is not None and note["flags"] & EPHEMERAL
    assert note["content"].startswith(
        "--v 6.1, --stylize 250, --style raw, --q 2: Midjourney options with no"
    )


@pytest.mark.parametrize(("topic", "fragment"), [(None, "`--ar W:H`"), ("buttons", "**U1–U4**"),
                                                 ("training", "/train token:"), ("library", "/library list")])  # fmt: skip
async def test_help_shows_one_topic_to_whoever_asks(stack: Stack, topic: str | None, fragment: str) -> None:
    options = {"topic": topic} if topic else {}
    interaction = await stack.fake.slash(stack.fake.add_user("new"), "help", options)
    assert fragment in await ephemeral_reply(stack, interaction)


async def _imagine_prompts(stack: Stack, user: int) -> list[str]:
    async with stack.jobs.sessions() as session:
        jobs = (await session.scalars(select(Job).where(Job.owner_id == user).order_by(Job.id))).all()
    return [spec_from_json(job.spec_json).prompt for job in jobs]  # type: ignore[union-attr]


async def test_choices_in_braces_become_a_job_each(stack: Stack) -> None:
    fake = stack.fake
    nina = fake.add_user("nina")
    interaction = await fake.slash(nina, "imagine", {"prompt": "a {red, blue} circle --steps 2"})
    await finished(stack, interaction)  # the first on the command's own message…
    await fake.wait_until(lambda: len([m for m in fake.channel_messages() if m["attachments"]]) >= 2, 60)
    assert await _imagine_prompts(stack, nina) == ["a red circle", "a blue circle"]  # …the second posted


async def test_more_than_four_jobs_ask_first_and_cancel_queues_nothing(stack: Stack) -> None:
    fake = stack.fake
    omar = fake.add_user("omar")
    prompt = {"prompt": "a {red, blue, green} circle --repeat 2 --steps 2"}
    asked = await fake.slash(omar, "imagine", prompt)
    assert "This prompt makes **6 jobs**" in await ephemeral_reply(stack, asked)
    assert asked.original_id is not None
    await fake.press(omar, asked.original_id, button(stack, asked, "Cancel"))
    await fake.wait_until(lambda: "Nothing was queued" in fake.message(asked.original_id)["content"])  # type: ignore[index]
    assert await _imagine_prompts(stack, omar) == []

    again = await fake.slash(omar, "imagine", prompt)
    await ephemeral_reply(stack, again)
    assert again.original_id is not None
    await fake.press(omar, again.original_id, button(stack, again, "Run them all"))
    await fake.wait_until(lambda: "Queued 6 of 6 jobs" in fake.message(again.original_id)["content"])  # type: ignore[index]
    assert await _imagine_prompts(stack, omar) == [
        f"a {c} circle" for c in ("red", "red", "blue", "blue", "green", "green")
    ]
    await fake.wait_until(lambda: len([m for m in fake.channel_messages() if m["attachments"]]) >= 6, 120)
