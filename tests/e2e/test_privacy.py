"""Consent for training, photos that do not outlive their training, and /forget (#9), end to end."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from storage.models import Adapter, ImageRecord, Job, User
from tests.e2e.conftest import Stack
from tests.e2e.helpers import count, custom_ids, ephemeral_reply, finished
from tests.e2e.test_imagine import _imagine
from tests.e2e.test_train_library import photo_attachments, train

pytestmark = pytest.mark.asyncio(loop_scope="module")
E2E_TRAINING_WORKER = True


async def _train_spec(stack: Stack, message: dict[str, object]) -> dict[str, object]:
    async with stack.jobs.sessions() as session:
        job = (await session.scalars(select(Job).where(Job.kind == "train").order_by(Job.id.desc()))).first()
    assert job is not None
    return json.loads(job.spec_json)  # type: ignore[no-any-return]


async def test_training_needs_consent_and_nothing_is_kept_without_it(stack: Stack) -> None:
    fake = stack.fake
    alice = fake.add_user("alice")
    refused = await fake.slash(
        alice,
        "train",
        {"token": "rex", "class_noun": "dog", "consent": False},
        attachments=photo_attachments(3),
    )
    assert "needs your confirmation" in await ephemeral_reply(stack, refused)
    assert await count(stack, Job) == 0


async def test_photos_are_deleted_when_training_ends_unless_kept(stack: Stack) -> None:
    fake = stack.fake
    bob = fake.add_user("bob")
    await train(stack, bob, "gone")
    spec = await _train_spec(stack, {})
    assert spec["consent"] is True and len(spec["images"]) == 4  # type: ignore[arg-type]
    assert not any(stack.jobs.files.exists(digest) for digest in spec["images"])  # type: ignore[union-attr]
    await train(stack, bob, "kept", keep_photos=True)
    kept = await _train_spec(stack, {})
    assert all(stack.jobs.files.exists(digest) for digest in kept["images"])  # type: ignore[union-attr]


async def test_forget_deletes_everything_of_the_user_but_what_others_use(stack: Stack) -> None:
    fake = stack.fake
    carol, dave = fake.add_user("carol"), fake.add_user("dave")
    await train(stack, carol, "mine", keep_photos=True)
    await _imagine(stack, carol, "a <mine> --seed 2 --steps 2")
    grid = await _imagine(stack, carol, "a red circle --seed 2 --steps 2")  # (dave may not use <mine>)
    grid_job = int(custom_ids(grid)[0].split(":")[2])
    varied = await finished(stack, await fake.press(dave, int(grid["id"]), f"dc:v:{grid_job}:1"))
    images = await stack.jobs.images_of(grid_job)
    async with stack.jobs.sessions() as session:
        adapter = (await session.scalars(select(Adapter).where(Adapter.owner_id == carol))).one()
        photos = json.loads(
            (await session.scalars(select(Job).where(Job.kind == "train", Job.owner_id == carol)))
            .one()
            .spec_json
        )["images"]

    asked = await fake.slash(carol, "forget")
    assert "cannot be undone" in await ephemeral_reply(stack, asked)
    kept = await fake.press(carol, asked.original_id, _button(fake, asked, "Keep my data"))  # type: ignore[arg-type]
    await fake.wait_until(lambda: kept.response_type == 7)
    assert await count(stack, Adapter) == 1  # nothing happened

    asked = await fake.slash(carol, "forget")
    await ephemeral_reply(stack, asked)
    confirmed = await fake.press(carol, asked.original_id, _button(fake, asked, "Delete everything"))  # type: ignore[arg-type]
    await fake.wait_until(
        lambda: "Done: deleted" in (fake.message(asked.original_id) or {}).get("content", "")
    )
    await fake.wait_until(lambda: fake.message(int(grid["id"])) is None)  # her result messages are gone
    assert confirmed.response_type == 6  # deferred, then the question itself says "Done"

    async with stack.jobs.sessions() as session:
        for model in (Job, ImageRecord, Adapter):
            owner = model.owner_id  # type: ignore[attr-defined]
            assert (await session.scalars(select(model).where(owner == carol))).all() == []
        assert await session.get(User, carol) is None
        dave_job = await session.get(Job, int(custom_ids(varied)[0].split(":")[2]))
    assert dave_job is not None and dave_job.parent_job_id is None  # his job stays, unlinked
    files = stack.jobs.files
    assert files.exists(images[1].file_hash)  # dave's variation names it as its source
    assert not any(files.exists(image.file_hash) for image in images if image.index != 1)
    assert not files.exists(adapter.file_hash) and not any(files.exists(digest) for digest in photos)
    assert fake.message(int(varied["id"])) is not None  # dave's result message stays


def _button(fake: object, interaction: object, label: str) -> str:
    message = fake.message(interaction.original_id)  # type: ignore[attr-defined]
    return next(
        c["custom_id"] for row in message["components"] for c in row["components"] if c["label"] == label
    )
