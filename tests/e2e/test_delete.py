"""The Delete button under one's own results, end to end: only the owner may, after a yes; the job's
pictures, rows and messages go, and what others made from it stays theirs."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storage.models import ImageRecord
from tests.e2e.conftest import Stack
from tests.e2e.helpers import custom_ids, ephemeral_reply, finished
from tests.e2e.test_forget import button
from tests.e2e.test_permissions import imagine_in, job_of

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_the_owner_deletes_a_grid_and_what_others_made_from_it_stays(stack: Stack) -> None:
    fake = stack.fake
    alice, bob = fake.add_user("alice"), fake.add_user("bob")
    grid = await imagine_in(stack, alice, "a red circle --seed 4 --steps 2")
    grid_job = job_of(grid)
    delete = f"dc:del:{grid_job}"
    assert delete in custom_ids(grid)
    varied = await finished(stack, await fake.press(bob, int(grid["id"]), f"dc:v:{grid_job}:0"))  # bob's V1
    bob_job = job_of(varied)
    pictures = [image.file_hash for image in await stack.jobs.images_of(grid_job)]
    source = pictures[0]

    refused = await fake.press(bob, int(grid["id"]), delete)
    assert await ephemeral_reply(stack, refused) == f"Only the person who made job {grid_job} can delete it."
    kept = await fake.press(alice, int(grid["id"]), delete)
    assert "cannot be undone" in await ephemeral_reply(stack, kept)
    assert kept.original_id is not None
    await fake.press(alice, kept.original_id, button(stack, kept, "Keep"))
    await fake.wait_until(lambda: "Nothing was deleted" in fake.message(kept.original_id)["content"])  # type: ignore[index]
    assert await stack.jobs.get_job(grid_job) is not None

    asked = await fake.press(alice, int(grid["id"]), delete)
    await ephemeral_reply(stack, asked)
    assert asked.original_id is not None
    await fake.press(alice, asked.original_id, button(stack, asked, "Delete"))
    await fake.wait_until(lambda: "Deleted job" in (fake.message(asked.original_id) or {}).get("content", ""))

    assert fake.message(int(grid["id"])) is None  # the grid's message is gone
    assert await stack.jobs.get_job(grid_job) is None
    async with stack.jobs.sessions() as session:
        left = await session.scalar(
            select(func.count()).select_from(ImageRecord).where(ImageRecord.job_id == grid_job)
        )
    assert left == 0
    assert fake.message(int(varied["id"])) is not None  # bob's variations stay his…
    bob_row = await stack.jobs.get_job(bob_job)
    assert bob_row is not None and bob_row.parent_job_id is None
    assert stack.jobs.files.exists(source)  # …with the picture they were made from
    assert not any(stack.jobs.files.exists(digest) for digest in pictures[1:])  # alice's other three: gone
    others = [image.file_hash for image in await stack.jobs.images_of(bob_job)]
    assert all(stack.jobs.files.exists(digest) for digest in others)
