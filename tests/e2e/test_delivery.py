"""How results reach Discord when Discord pushes back: expired tokens, 429s, upload limits, crowds."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from storage import jobs as job_store
from storage.models import Job
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _with_image(fake: Any, message_id: int | None) -> dict[str, Any] | None:
    message = fake.message(message_id)
    return message if message and message["attachments"] else None


async def test_a_result_outliving_the_token_is_posted_to_the_channel(stack: Stack) -> None:
    fake = stack.fake
    fake.token_lifetime = 0.0  # every webhook call after the first response fails with 50027
    user = fake.add_user("patient")
    interaction = await fake.slash(user, "imagine", {"prompt": "a red circle --seed 2 --steps 3"})
    posted = await fake.wait_until(
        lambda: next((m for m in fake.channel_messages() if m["attachments"] and m["nonce"]), None),
        timeout=60,
    )
    assert 50027 in interaction.errors  # the bot tried the token, then fell back to the bot token
    assert f"<@{user}>" in posted["content"] and posted["components"]  # buttons came along
    job_id = int(posted["nonce"].rsplit("-", 1)[1])
    assert await stack.job_message_id(job_id) == int(posted["id"])
    assert _with_image(fake, interaction.original_id) is None  # the expired message was never given the image


async def test_a_rate_limited_edit_is_retried(stack: Stack) -> None:
    fake = stack.fake
    user = fake.add_user("hasty")
    fake.rate_limit("PATCH", "/messages/@original")
    fake.rate_limit("PATCH", "/messages/@original")
    interaction = await fake.slash(user, "imagine", {"prompt": "a blue circle --seed 3 --steps 2"})
    message = await fake.wait_until(lambda: _with_image(fake, interaction.original_id), timeout=60)
    assert message["components"]
    patches = [path for method, path in fake.requests if method == "PATCH" and interaction.token in path]
    assert len(patches) >= 3  # two answered 429, then the edits went through


async def test_a_result_over_the_upload_limit_is_shrunk_to_fit(stack: Stack) -> None:
    fake = stack.fake
    fake.upload_limit = 12_000  # the tiny model's noisy 128x128 grid is ~40 KB as PNG
    user = fake.add_user("thrifty")
    interaction = await fake.slash(user, "imagine", {"prompt": "a cat --seed 4 --steps 2"})
    message = await fake.wait_until(lambda: _with_image(fake, interaction.original_id), timeout=60)
    attachment = message["attachments"][0]
    assert attachment["size"] <= 12_000 and attachment["filename"].endswith(".jpg")
    with Image.open(io.BytesIO(fake.attachment_bytes(attachment))) as image:
        assert image.format == "JPEG"


async def test_two_users_at_once_each_get_their_own_grid(stack: Stack) -> None:
    fake = stack.fake
    ann, ben = fake.add_user("ann"), fake.add_user("ben")
    first, second = await asyncio.gather(
        fake.slash(ann, "imagine", {"prompt": "a red square --seed 10 --steps 2"}),
        fake.slash(ben, "imagine", {"prompt": "a green ring --seed 20 --steps 2"}),
    )
    one = await fake.wait_until(lambda: _with_image(fake, first.original_id), timeout=60)
    two = await fake.wait_until(lambda: _with_image(fake, second.original_id), timeout=60)
    assert f"<@{ann}>" in one["content"] and "a red square" in one["content"]
    assert f"<@{ben}>" in two["content"] and "a green ring" in two["content"]


class _KilledBeforeRecording:
    """repo.record_message that fails once, as if the bot died between sending a result and recording
    its message id."""

    def __init__(self, record: Any) -> None:
        self.record, self.killed = record, asyncio.Event()

    async def __call__(self, session: Any, job_id: int, message_id: int) -> None:
        if not self.killed.is_set():
            self.killed.set()
            raise ConnectionResetError("the bot was killed here")
        await self.record(session, job_id, message_id)


def _pictures(fake: Any) -> list[dict[str, Any]]:
    return [m for m in fake.messages.values() if m["attachments"]]


async def test_an_edited_result_whose_id_was_lost_is_not_posted_again_after_a_restart(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = stack.fake
    killed = _KilledBeforeRecording(job_store.record_message)
    monkeypatch.setattr(job_store, "record_message", killed)
    user = fake.add_user("unlucky")
    interaction = await fake.slash(user, "imagine", {"prompt": "a red circle --seed 5 --steps 2"})
    await fake.wait_until(lambda: _with_image(fake, interaction.original_id), timeout=60)
    await asyncio.wait_for(killed.killed.wait(), 30)
    (job,) = await _jobs_of(stack, user)
    assert job.message_id is None and job.delivery_started_at is not None

    await stack.restart_bot()
    assert await stack.job_message_id(job.id) == interaction.original_id  # found in Discord, recorded
    assert [m["id"] for m in _pictures(fake)] == [str(interaction.original_id)]


async def test_a_channel_post_whose_id_was_lost_is_found_in_the_channel_after_a_restart(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = stack.fake
    fake.token_lifetime = 0.0  # the result goes to the channel
    fake.nonce_window_open = False  # down for longer than Discord remembers nonces
    killed = _KilledBeforeRecording(job_store.record_message)
    monkeypatch.setattr(job_store, "record_message", killed)
    user = fake.add_user("unluckier")
    await fake.slash(user, "imagine", {"prompt": "a blue square --seed 6 --steps 2"})
    posted = await fake.wait_until(lambda: next(iter(_pictures(fake)), None), timeout=60)
    await asyncio.wait_for(killed.killed.wait(), 30)
    (job,) = await _jobs_of(stack, user)

    await stack.restart_bot()
    assert await stack.job_message_id(job.id) == int(posted["id"])
    assert _pictures(fake) == [posted]


async def _jobs_of(stack: Stack, user: int) -> list[Any]:
    async with stack.jobs.sessions() as session:
        return list((await session.scalars(select(Job).where(Job.owner_id == user))).all())
