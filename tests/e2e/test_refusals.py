"""Every refusal answered and cleaned up (#16): downloads Discord cannot deliver, pictures no model can
work on, forms sent after a restart, and a result whose message a moderator deleted."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from PIL import Image

from storage.models import JobState
from tests.e2e.conftest import Stack
from tests.e2e.helpers import custom_ids, ephemeral_reply, finished, png
from tests.e2e.test_permissions import imagine_in, job_of, jobs_of, refused_quietly
from tests.e2e.test_train_library import photo_attachments

pytestmark = pytest.mark.asyncio(loop_scope="module")

PICTURE = ("cat.png", png(Image.new("RGB", (64, 64), (200, 40, 40))), "image/png")


@pytest.mark.parametrize(
    ("command", "options", "attachments"),
    [
        ("vary", {"prompt": "a cat"}, {"image": PICTURE}),
        ("upscale", {"prompt": "a cat"}, {"image": PICTURE}),
        ("outpaint", {"operation": "zoom", "prompt": "a cat"}, {"image": PICTURE}),
        ("train", {"token": "rex", "class_noun": "dog", "consent": True}, photo_attachments(3)),
    ],
    ids=["vary", "upscale", "outpaint", "train"],
)
async def test_an_upload_the_cdn_cannot_deliver_is_a_clear_refusal(
    stack: Stack, command: str, options: dict[str, object], attachments: dict[str, tuple[str, bytes, str]]
) -> None:
    fake = stack.fake
    fake.cdn_broken = True
    frank = fake.add_user("frank")
    interaction = await fake.slash(frank, command, options, attachments=attachments)
    reply = await refused_quietly(stack, interaction)
    assert reply.startswith("could not download") and "404" in reply and "upload it again" in reply
    assert interaction.response_type == 5  # it was deferred first (downloads take time)…
    assert fake.message(interaction.original_id) is None  # …and the public "thinking…" is gone
    assert await jobs_of(stack, frank) == 0


async def test_a_picture_no_model_can_work_on_is_refused_before_it_is_stored(stack: Stack) -> None:
    fake = stack.fake
    gina = fake.add_user("gina")
    sliver = ("sliver.png", png(Image.new("RGB", (2000, 8), (10, 200, 10))), "image/png")
    interaction = await fake.slash(gina, "vary", {"prompt": "a green line"}, attachments={"image": sliver})
    reply = await refused_quietly(stack, interaction)
    assert "sliver.png is 2000x8" in reply and "from 1:4 to 4:1" in reply
    assert await jobs_of(stack, gina) == 0
    assert not stack.jobs.files.exists(hashlib.sha256(sliver[1]).hexdigest())


async def test_a_region_form_opened_before_a_restart_is_answered_after_it(stack: Stack) -> None:
    fake = stack.fake
    hana = fake.add_user("hana")
    grid = await imagine_in(stack, hana, "a red circle --seed 9 --steps 2")
    single = await finished(stack, await fake.press(hana, int(grid["id"]), custom_ids(grid)[0]))
    opened = await fake.press(
        hana, int(single["id"]), next(c for c in custom_ids(single) if c.startswith("dc:vr:"))
    )
    await fake.wait_until(lambda: opened.modal is not None)
    await stack.restart_bot()
    varied = await finished(stack, await fake.submit_modal(hana, opened, {"region": "0, 0, 50, 50"}))
    assert "region" in varied["content"] and job_of(varied) != job_of(grid)


async def test_a_result_whose_message_a_moderator_deleted_is_not_posted_again(stack: Stack) -> None:
    fake = stack.fake
    ivan = fake.add_user("ivan")
    interaction = await fake.slash(ivan, "imagine", {"prompt": "a red circle --seed 10 --steps 40"})
    await fake.wait_until(
        lambda: "queued" in (fake.message(interaction.original_id) or {}).get("content", "")
    )
    (job,) = await stack.jobs.active_jobs_of(ivan)
    del fake.messages[interaction.original_id]  # type: ignore[arg-type]  # a moderator removes it
    assert await stack.job_message_id(job.id, timeout=120) == interaction.original_id  # counted as delivered
    finished_job = await stack.jobs.get_job(job.id)
    assert finished_job is not None and finished_job.state == JobState.DONE
    await stack.restart_bot()  # a restart does not post it either
    assert not [m for m in fake.channel_messages() if m["attachments"]]


async def test_a_refused_burst_does_not_use_up_the_daily_quota(stack: Stack) -> None:
    """Jobs refused at the queue limit (10 queued or running) do not count towards the day's 12."""
    fake = stack.fake
    boss, kim = fake.add_user("boss", admin=True), fake.add_user("kim")
    daily = 12
    await stack.bot.services.admin.set_quotas(fake.guild_id, boss, max_queued=None, daily_jobs=daily)
    burst = await asyncio.gather(  # slow jobs, so that the queue is full when the last ones arrive
        *(fake.slash(kim, "imagine", {"prompt": f"a cat --seed {i} --steps 40"}) for i in range(daily + 2))
    )
    pictures = refusals = 0
    for interaction in burst:  # each one is answered: a picture, or a refusal that names the limit
        await fake.wait_until(
            lambda i=interaction: (
                i.response_type == 4
                or bool(i.followup_ids)
                or bool((fake.message(i.original_id) or {}).get("attachments"))
            ),
            timeout=180,
        )
        if interaction.response_type == 4 or interaction.followup_ids:
            assert "jobs queued or running" in await ephemeral_reply(stack, interaction)
            refusals += 1
        else:
            pictures += 1
    assert refusals > 0 and pictures + refusals == daily + 2
    while pictures < daily:  # what was refused did not count: the rest of the allowance is still there
        await imagine_in(stack, kim, f"a dog --seed {pictures} --steps 2")
        pictures += 1
    over = await fake.slash(kim, "imagine", {"prompt": "one more --steps 2"})
    assert f"allows {daily} jobs per person per 24 hours" in await refused_quietly(stack, over)


async def test_while_the_bot_stops_new_jobs_and_buttons_get_a_restarting_line(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = stack.fake
    lee = fake.add_user("lee")
    grid = await imagine_in(stack, lee, "a red circle --seed 1 --steps 2")
    monkeypatch.setattr(stack.jobs.pool, "hold_queued", lambda: None)  # the pool serves later tests
    assert await stack.jobs.drain(grace_s=5) == []  # what a stop signal does first

    typed = await fake.slash(lee, "imagine", {"prompt": "a blue square"})
    pressed = await fake.press(lee, int(grid["id"]), custom_ids(grid)[5])  # V1
    for interaction in (typed, pressed):
        assert "dreamcord is restarting right now" in await refused_quietly(stack, interaction)
    assert await jobs_of(stack, lee) == 1
    listing = await fake.slash(lee, "queue")  # what needs no new job still works
    assert "restarting" not in await ephemeral_reply(stack, listing)
