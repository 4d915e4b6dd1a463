"""The whole bot on the Ray backend: /train and a `<token>` prompt through Ray actors.

Photos reach the training actor, and the trained LoRA the interactive actor, only through Ray's
object store by content hash: the actors get no data_dir of the bot's. The pictures stored for the
prompt are byte for byte what this process renders reading the bot's own file store, so the LoRA
arrived whole and was applied.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from generation.pool.runner import JobRunner
from generation.specs import ImagineSpec, spec_from_json
from storage.files import FileStore
from storage.models import Adapter, ImageRecord, Job, JobState
from tests.e2e.conftest import Stack
from tests.e2e.test_train_library import imagine, train

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.ray]
E2E_POOL_BACKEND = "ray"
E2E_TRAINING_WORKER = True


async def test_train_and_use_a_token_with_workers_on_ray(stack: Stack) -> None:
    fake = stack.fake
    alice = fake.add_user("alice")
    message = await train(stack, alice)
    assert "**<hexy>** is ready" in message["content"]
    async with stack.jobs.sessions() as session:
        adapter = (await session.scalars(select(Adapter))).one()

    used = await imagine(stack, alice, "a <hexy> --seed 3 --steps 2")
    await fake.wait_until(lambda: (m := fake.message(used.original_id)) and m["attachments"], timeout=60)
    async with stack.jobs.sessions() as session:
        job = (await session.scalars(select(Job).where(Job.kind == "imagine"))).one()
        stored = (await session.scalars(select(ImageRecord).where(ImageRecord.job_id == job.id))).all()
    spec = spec_from_json(job.spec_json)
    assert job.state == JobState.DONE and isinstance(spec, ImagineSpec)
    assert [ref.file for ref in spec.adapters] == [adapter.file_hash]

    runner = JobRunner(stack.settings.models, device="cpu", data_dir=stack.settings.data_dir)
    direct = runner.run(spec)
    files = FileStore(stack.settings.files_dir)
    by_seed = {record.seed: files.read(record.file_hash) for record in stored}
    assert [by_seed[image.seed] for image in direct.images] == [image.png for image in direct.images]
    switched_off = (spec.adapters[0].model_copy(update={"weight": 0.0}),)
    without = runner.run(spec.model_copy(update={"adapters": switched_off}))  # the LoRA made them so
    for ours, plain in zip(direct.images, without.images, strict=True):
        assert not np.array_equal(np.asarray(ours.image()), np.asarray(plain.image()))
