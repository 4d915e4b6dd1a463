"""/train, /library and `<token>` in prompts, end to end: photos in, a private token out."""

from __future__ import annotations

import asyncio
import io
import pickle
from typing import Any

import pytest
from PIL import Image

from generation.bundled.novel import hexagon_photos
from storage.models import Adapter, Job
from tests.e2e.conftest import Stack
from tests.e2e.helpers import count, ephemeral_reply, png

pytestmark = pytest.mark.asyncio(loop_scope="module")
E2E_TRAINING_WORKER = True  # this module's pool gets a training worker (see conftest)


def photo_attachments(count: int = 4) -> dict[str, tuple[str, bytes, str]]:
    return {
        f"photo{i + 1}": (f"hex{i + 1}.png", png(image), "image/png")
        for i, image in enumerate(hexagon_photos(count, size=96, seed=4))
    }


async def train(stack: Stack, user: int, token: str = "hexy", **options: object) -> dict[str, Any]:
    fake = stack.fake
    interaction = await fake.slash(
        user,
        "train",
        {"token": token, "class_noun": "shape", "consent": True, **options},
        attachments=photo_attachments(),
    )
    await fake.wait_until(
        lambda: (m := fake.message(interaction.original_id)) and "is ready" in m["content"], timeout=120
    )
    assert interaction.response_type == 5
    return fake.message(interaction.original_id)  # type: ignore[return-value]


async def imagine(stack: Stack, user: int, prompt: str) -> Any:
    return await stack.fake.slash(user, "imagine", {"prompt": prompt})


async def test_train_then_use_the_token_only_its_owner_can(stack: Stack) -> None:
    fake = stack.fake
    alice, bob = fake.add_user("alice"), fake.add_user("bob")
    message = await train(stack, alice)
    assert "**<hexy>** is ready" in message["content"] and message["attachments"]  # with sample images
    with Image.open(io.BytesIO(fake.attachment_bytes(message["attachments"][0]))) as samples:
        assert samples.size == (128, 128)  # 2x2 grid of 64 px samples
    assert await count(stack, Adapter) == 1

    used = await imagine(stack, alice, "a <hexy> --seed 3 --steps 2")
    await fake.wait_until(lambda: (m := fake.message(used.original_id)) and m["attachments"], timeout=60)
    grid = fake.message(used.original_id)
    reroll_id = grid["components"][0]["components"][-1]["custom_id"]  # type: ignore[index]
    assert reroll_id.startswith("dc:r:")

    jobs_before = await count(stack, Job)
    pressed = await fake.press(bob, int(grid["id"]), reroll_id)  # type: ignore[index]
    assert "<hexy> is not in your library" in await ephemeral_reply(stack, pressed)  # never applied for bob
    assert await count(stack, Job) == jobs_before

    jobs_before = await count(stack, Job)
    refused = await imagine(stack, bob, "a <hexy> --steps 2")
    assert "<hexy> is not in your library" in await ephemeral_reply(stack, refused)
    assert await count(stack, Job) == jobs_before

    listing = await fake.slash(alice, "library list")
    assert "<hexy>" in await ephemeral_reply(stack, listing)
    assert "library is empty" in await ephemeral_reply(stack, await fake.slash(bob, "library list"))


async def test_another_user_cannot_rename_delete_or_share_a_private_token(stack: Stack) -> None:
    fake = stack.fake
    carol, dave = fake.add_user("carol"), fake.add_user("dave")
    await train(stack, carol, token="style", method="embedding")
    for command, options in (
        ("library rename", {"name": "style", "new_name": "stolen"}),
        ("library delete", {"name": "style"}),
        ("library share", {"name": "style", "visibility": "public"}),
        ("library show", {"name": "style"}),
    ):
        reply = await ephemeral_reply(stack, await fake.slash(dave, command, options))
        assert "<style>" in reply and ("no token" in reply or "not in your library" in reply)
    assert "<style>" in await ephemeral_reply(
        stack, await fake.slash(carol, "library show", {"name": "style"})
    )

    shared = await fake.slash(carol, "library share", {"name": "style", "visibility": "guild"})
    assert "visible to this server" in await ephemeral_reply(stack, shared)
    used = await imagine(stack, dave, "a <style> --steps 2")  # same server: now allowed
    await fake.wait_until(lambda: (m := fake.message(used.original_id)) and m["attachments"], timeout=60)
    deleted = await fake.slash(carol, "library delete", {"name": "style"})
    assert "Deleted <style>" in await ephemeral_reply(stack, deleted)
    assert await count(stack, Adapter) == 0


@pytest.mark.parametrize(
    ("filename", "blob", "expected"),
    [
        ("notes.png", b"this is text, renamed to .png", "notes.png is not an image"),
        ("bomb.png", png(Image.new("1", (30_000, 30_000))), "bomb.png is far too large"),
    ],
    ids=["text-as-png", "decompression-bomb"],
)
async def test_bad_photo_is_an_ephemeral_error_and_nothing_is_queued(
    stack: Stack, filename: str, blob: bytes, expected: str
) -> None:
    fake = stack.fake
    erin = fake.add_user("erin")
    attachments = photo_attachments(3)
    attachments["photo2"] = (filename, blob, "image/png")
    interaction = await fake.slash(
        erin, "train", {"token": "oops", "class_noun": "shape", "consent": True}, attachments=attachments
    )
    assert expected in await ephemeral_reply(stack, interaction)
    assert await count(stack, Job) == 0
    assert fake.message(interaction.original_id) is None  # the "thinking…" message was removed


async def test_bad_token_name_and_pickle_import_are_refused(stack: Stack) -> None:
    fake = stack.fake
    frank = fake.add_user("frank")
    bad_name = await fake.slash(
        frank,
        "train",
        {"token": "my token!", "class_noun": "shape", "consent": True},
        attachments=photo_attachments(3),
    )
    assert "cannot be a token name" in await ephemeral_reply(stack, bad_name)
    pickled = await fake.slash(
        frank,
        "library import",
        {"name": "evil"},
        attachments={"file": ("evil.safetensors", pickle.dumps({"x": 1}), "application/octet-stream")},
    )
    assert "pickle file" in await ephemeral_reply(stack, pickled)
    neither = await fake.slash(frank, "library import", {"name": "style"})
    assert "give the file to import, or a link to it" in await ephemeral_reply(stack, neither)
    private = await fake.slash(
        frank, "library import", {"name": "style", "url": "https://169.254.169.254/lora"}
    )
    assert "private or local address; only public addresses are fetched" in await ephemeral_reply(
        stack, private
    )
    assert await count(stack, Job) == 0


async def test_training_progress_is_shown_and_the_training_lane_leaves_imagine_free(stack: Stack) -> None:
    fake = stack.fake
    gina = fake.add_user("gina")
    training = await fake.slash(
        gina,
        "train",
        {"token": "slowpoke", "class_noun": "shape", "consent": True, "steps": 5000, "method": "embedding"},
        attachments=photo_attachments(),
    )
    await fake.wait_until(
        lambda: (m := fake.message(training.original_id)) and "loss" in m["content"], timeout=60
    )
    assert "training <slowpoke>" in fake.message(training.original_id)["content"]  # type: ignore[index]
    quick = await imagine(stack, gina, "a red circle --steps 2")
    await fake.wait_until(lambda: (m := fake.message(quick.original_id)) and m["attachments"], timeout=60)
    assert "is ready" not in fake.message(training.original_id)["content"]  # type: ignore[index]
    job_id = int(
        fake.message(training.original_id)["components"][0]["components"][0]["custom_id"].split(":")[2]
    )  # type: ignore[index]
    cancel = await fake.slash(gina, "queue", {"cancel": job_id})
    assert f"Cancelling job {job_id}" in await ephemeral_reply(stack, cancel)
    await fake.wait_until(
        lambda: "cancelled" in fake.message(training.original_id)["content"],
        timeout=30,  # type: ignore[index]
    )
    await asyncio.sleep(0)
