"""/describe end to end: four suggestions under an uploaded picture or an earlier result, a number
pressed becomes an /imagine of that suggestion (owned by whoever pressed), "Imagine all" starts all
four; the one visibility rule holds for the buttons too."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from generation.bundled.dataset import Background, Scene, Shape
from generation.config import ModelConfig
from generation.specs import spec_from_json
from storage.models import Job
from tests.e2e.conftest import Stack
from tests.e2e.helpers import custom_ids, finished, png
from tests.e2e.test_imagine import _imagine
from tests.e2e.test_permissions import job_of, jobs_of, not_visible, refused_quietly

pytestmark = pytest.mark.asyncio(loop_scope="module")

STAR = Scene((Shape("star", "green", "large", "centre"),), Background("solid", ("white",)))
UPLOAD = ("star.png", png(STAR.render()), "image/png")


@pytest.fixture(scope="module")
def e2e_config(e2e_config: ModelConfig) -> ModelConfig:
    return replace(e2e_config, describer="bundled")  # it reads any picture; the tiny model draws


async def _described(stack: Stack, interaction: Any) -> dict[str, Any]:
    fake = stack.fake
    await fake.wait_until(
        lambda: "**Described**" in ((fake.message(interaction.original_id) or {}).get("content", "")),
        timeout=60,
    )
    return fake.message(interaction.original_id)  # type: ignore[no-any-return]


async def _children(stack: Stack, parent: int) -> list[Job]:
    async with stack.jobs.sessions() as session:
        return list((await session.scalars(select(Job).where(Job.parent_job_id == parent))).all())


async def test_describe_an_upload_then_press_a_number_to_imagine_it(stack: Stack) -> None:
    fake = stack.fake
    ada, ben = fake.add_user("ada"), fake.add_user("ben")
    message = await _described(stack, await fake.slash(ada, "describe", {}, attachments={"image": UPLOAD}))
    lines = message["content"].split("\n")
    assert lines[1] == "1️⃣ a green star on a white background", lines
    assert message["attachments"] == []
    buttons = custom_ids(message)
    described = int(buttons[0].split(":")[2])
    assert buttons == [f"dc:d{which}:{described}" for which in ("1", "2", "3", "4", "a")]
    job = await stack.jobs.get_job(described)
    assert job is not None and job.kind == "describe" and job.owner_id == ada
    suggestions = [line.split(" ", 1)[1] for line in lines[1:5]]

    grid = await finished(stack, await fake.press(ben, int(message["id"]), buttons[1]))  # "2"
    made = await stack.jobs.get_job(job_of(grid))
    assert made is not None and made.owner_id == ben and made.parent_job_id == described
    spec = spec_from_json(made.spec_json)
    assert spec.kind == "imagine" and spec.prompt == suggestions[1] and spec.model == "tiny"


async def test_imagine_all_starts_one_job_per_suggestion(stack: Stack) -> None:
    fake = stack.fake
    cy = fake.add_user("cy")
    grid = await _imagine(stack, cy, "a red circle --seed 3 --steps 2")
    message = await _described(stack, await fake.slash(cy, "describe", {"job": job_of(grid), "index": 2}))
    described = int(custom_ids(message)[0].split(":")[2])
    job = await stack.jobs.get_job(described)
    assert job is not None and job.parent_job_id == job_of(grid)
    await finished(stack, await fake.press(cy, int(message["id"]), f"dc:da:{described}"))
    children = await _children(stack, described)
    prompts = [spec_from_json(child.spec_json).prompt for child in children]  # type: ignore[union-attr]
    shown = [line.split(" ", 1)[1] for line in message["content"].split("\n")[1:5]]
    assert sorted(prompts) == sorted(shown) and {child.owner_id for child in children} == {cy}


async def test_forged_numbers_of_a_dm_describe_and_a_banned_presser_are_refused(stack: Stack) -> None:
    fake = stack.fake
    dee, mallory = fake.add_user("dee"), fake.add_user("mallory")
    boss, fred = fake.add_user("boss", admin=True), fake.add_user("fred")
    private = await fake.slash(dee, "describe", {}, attachments={"image": UPLOAD}, place=fake.dm(dee))
    message = await _described(stack, private)
    described = int(custom_ids(message)[0].split(":")[2])
    forged = fake.forge_message(fake.main, message["components"])
    for custom_id in custom_ids(forged):
        pressed = await fake.press(mallory, int(forged["id"]), custom_id)
        assert await refused_quietly(stack, pressed) == not_visible(described), custom_id
    public = await _described(stack, await fake.slash(dee, "describe", {}, attachments={"image": UPLOAD}))
    await stack.bot.services.admin.ban(fake.guild_id, boss, fred, "spam")
    pressed = await fake.press(fred, int(public["id"]), custom_ids(public)[0])
    assert "banned from using dreamcord here (spam)" in await refused_quietly(stack, pressed)
    assert await jobs_of(stack, mallory) == 0 and await jobs_of(stack, fred) == 0
