"""A user's right to be forgotten, and training photos that do not outlive their training."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.file_sweeper import discard_unused
from generation.errors import DreamcordError
from generation.specs import TrainSpec
from storage import admin as admin_store
from storage import jobs as job_store
from storage import privacy as store
from storage.db import write_transaction
from storage.files import FileStore

log = logging.getLogger(__name__)


class ForgetInProgress(DreamcordError):
    """The user's data is being deleted: nothing new of theirs is accepted until that is done."""


class PrivacyService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], files: FileStore, data_dir: Path | None = None
    ) -> None:
        self.sessions = sessions
        self.files = files
        self.data_dir = data_dir
        self._forgetting: set[int] = set()  # users whose /forget runs now (rows, files, then messages)

    def refuse_while_forgetting(self, user_id: int) -> None:
        """Raise ForgetInProgress while the user's /forget runs (the job service asks before storing)."""
        if user_id in self._forgetting:
            raise ForgetInProgress("your data is being deleted (/forget); try again once that is done")

    @asynccontextmanager
    async def forgetting(self, user_id: int) -> AsyncIterator[None]:
        """Mark the user as being forgotten for the whole of a forget, messages included; a second forget
        of the same user at the same time (a double click) is refused."""
        if user_id in self._forgetting:
            raise ForgetInProgress("your data is already being deleted")
        self._forgetting.add(user_id)
        try:
            yield
        finally:
            self._forgetting.discard(user_id)

    async def record_posted(
        self, *, user_id: int, job_id: int | None, channel_id: int | None, message_id: int | None
    ) -> None:
        """Remember a message the bot posted for `user_id` (showing `job_id`), so /forget can delete it."""
        if channel_id is None or message_id is None:
            return  # an ephemeral reply, or one Discord gave no id for: nothing to delete later
        async with write_transaction(self.sessions) as session:
            await store.record_posted(
                session, user_id=user_id, job_id=job_id, channel_id=channel_id, message_id=message_id
            )

    async def summary(self, user_id: int) -> store.UserData:
        async with self.sessions() as session:
            return await store.user_data(session, user_id)

    async def forget(self, user_id: int) -> store.UserData:
        """Delete every row and file of the user (files others still use stay). Refused while they have
        jobs queued or running: a worker would write a result for a job that no longer exists.

        Call it inside `forgetting(user_id)`. The check and the deletion are one write transaction, and
        the job service stores a job inside one too, after asking `refuse_while_forgetting`: a submit
        either lands before (and the forget is refused) or is refused itself."""
        async with write_transaction(self.sessions) as session:
            await store.lock_user(session, user_id)
            active = await admin_store.active_jobs(session, user_id)
            if active:
                raise DreamcordError(
                    "you have jobs queued or running: cancel them with /queue (or wait), then try again"
                )
            data = await store.user_data(session, user_id)
            await store.delete_user_rows(session, user_id)
        await self._delete_unused(data.files)
        await asyncio.to_thread(self._delete_checkpoints, data.train_job_ids)
        log.info(
            "user %d forgotten: %d jobs, %d images, %d adapters",
            user_id,
            data.jobs,
            data.images,
            data.adapters,
        )
        return data

    async def delete_job(self, job_id: int, user_id: int) -> tuple[tuple[int, int], ...]:
        """Delete one finished job of `user_id` (its pictures and rows; files others use stay); the
        (channel, message) of the messages that showed it, for the caller to delete in Discord."""
        async with write_transaction(self.sessions) as session:
            job = await job_store.get_job(session, job_id)
            if job is None or job.owner_id != user_id:
                raise DreamcordError(f"only the person who made job {job_id} can delete it")
            if not job.state.finished:
                raise DreamcordError(f"job {job_id} is not finished: cancel it first (/queue)")
            if job.kind in ("train", "import"):  # its token lives on in the library
                raise DreamcordError(f"job {job_id} made a token: delete that with /library delete")
            files, messages = await store.delete_job_rows(session, job)
        await self._delete_unused(files)
        log.info("job %d deleted by its owner (%d files looked at)", job_id, len(files))
        return messages

    async def discard_training_photos(self, job_id: int, spec: TrainSpec) -> int:
        """After a training ends (however it ends), delete its photos unless the user kept them."""
        if spec.keep_photos:
            return 0
        return await self._delete_unused(set(spec.images), except_job=job_id)

    async def _delete_unused(
        self, digests: set[str] | frozenset[str], *, except_job: int | None = None
    ) -> int:
        return await discard_unused(self.sessions, self.files, digests, except_job=except_job)

    def _delete_checkpoints(self, train_job_ids: tuple[int, ...]) -> None:
        if self.data_dir is None:
            return
        for job_id in train_job_ids:
            for folder in (self.data_dir / "training").glob(f"job-{job_id}-*"):
                shutil.rmtree(folder, ignore_errors=True)
