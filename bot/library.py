"""The personal library behind /library: list, show, rename, delete, share and import tokens.

Every write checks ownership here (a user may only change their own entries), and every read goes
through `storage.library`'s visibility rule, so another user's private token is invisible: asking
for it by name gets the same "not in your library" as a name nobody has.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.jobs import JobService, JobTicket, TokenTaken, UnknownToken
from bot.link_downloads import LinkFetcher
from bot.offload import in_helper_process
from generation.errors import DreamcordError
from generation.models.adapter_files import MAX_ADAPTER_BYTES, head_of, inspect_adapter_head
from generation.specs import ImportSpec, adapter_name_problem, build_spec
from storage import library
from storage.db import write_transaction
from storage.files import FileStore
from storage.models import Adapter, Visibility


class LibraryError(DreamcordError):
    """A library request that cannot be done; the message says why."""


@dataclass(frozen=True)
class LibraryEntry:
    name: str
    kind: str
    base_model: str
    visibility: str
    trigger_words: str
    tags: str  # a kohya LoRA's most frequent caption tags ("" for others)
    owner_id: int
    mine: bool
    created: str

    @classmethod
    def of(cls, adapter: Adapter, user_id: int) -> LibraryEntry:
        return cls(
            name=adapter.name,
            kind=adapter.kind.value,
            base_model=adapter.base_model,
            visibility=adapter.visibility.value,
            trigger_words=adapter.trigger_words,
            tags=adapter.tags,
            owner_id=adapter.owner_id,
            mine=adapter.owner_id == user_id,
            created=adapter.created_at.strftime("%Y-%m-%d"),
        )


class LibraryService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        files: FileStore,
        jobs: JobService,
        links: LinkFetcher | None = None,
    ) -> None:
        self.sessions = sessions
        self.files = files
        self.jobs = jobs
        self.links = links or LinkFetcher(max_bytes=MAX_ADAPTER_BYTES)  # /library import url:…

    async def entries(self, user_id: int, guild_id: int | None) -> list[LibraryEntry]:
        """The user's own tokens, then those shared with them here."""
        async with self.sessions() as session:
            adapters = await library.visible_adapters(session, user_id, guild_id)
        return [LibraryEntry.of(adapter, user_id) for adapter in adapters]

    async def show(self, user_id: int, name: str, guild_id: int | None) -> LibraryEntry:
        async with self.sessions() as session:
            adapter = await library.usable_adapter(session, user_id, name, guild_id)
        if adapter is None:
            raise UnknownToken(f"<{name}> is not in your library")
        return LibraryEntry.of(adapter, user_id)

    async def rename(self, user_id: int, name: str, new_name: str) -> LibraryEntry:
        _check_name(new_name)
        try:
            async with write_transaction(self.sessions) as session:
                adapter = await self._own(session, user_id, name)
                if await library.owned_adapter(session, user_id, new_name) is not None:
                    raise TokenTaken(f"you already have <{new_name}>")
                adapter.name = new_name
                await session.flush()
                return LibraryEntry.of(adapter, user_id)
        except IntegrityError:  # a concurrent rename or training took the name between check and write
            raise TokenTaken(f"you already have <{new_name}>") from None

    async def delete(self, user_id: int, name: str) -> None:
        """Remove the entry; its file too, once no other entry uses it."""
        async with write_transaction(self.sessions) as session:
            adapter = await self._own(session, user_id, name)
            file_hash = adapter.file_hash
            await session.delete(adapter)
            await session.flush()
            still_used = await library.adapters_using_file(session, file_hash)
        if not still_used:
            await asyncio.to_thread(self.files.delete, file_hash)

    async def share(
        self, user_id: int, name: str, visibility: Visibility, guild_id: int | None
    ) -> LibraryEntry:
        if visibility is Visibility.GUILD and guild_id is None:
            raise LibraryError("sharing with a server works only from inside that server")
        async with write_transaction(self.sessions) as session:
            adapter = await self._own(session, user_id, name)
            adapter.visibility = visibility
            adapter.guild_id = guild_id if visibility is Visibility.GUILD else None
            await session.flush()
            return LibraryEntry.of(adapter, user_id)

    async def import_file(
        self,
        user_id: int,
        name: str,
        filename: str,
        data: bytes,
        *,
        model: str,
        trigger: str = "",
        guild_id: int | None = None,
        channel_id: int | None = None,
    ) -> JobTicket:
        """Check the file's format here, then queue a job that loads it into the model for real."""
        spec = await self.import_spec(name, filename, data, model=model, trigger=trigger)
        return await self.jobs.submit(owner_id=user_id, spec=spec, guild_id=guild_id, channel_id=channel_id)

    async def import_link_spec(self, name: str, url: str, *, model: str, trigger: str = "") -> ImportSpec:
        """An import of the file a link points at (bot.link_downloads fences the fetch), checked
        exactly as an uploaded one: the name first, so a typo costs no download."""
        _check_name(name)
        filename, data = await self.links.fetch(url)
        return await self.import_spec(name, filename, data, model=model, trigger=trigger)

    async def import_spec(
        self, name: str, filename: str, data: bytes, *, model: str, trigger: str = ""
    ) -> ImportSpec:
        """Refuse pickles and anything that is not a LoRA or embedding, then the spec's own checks
        (name, trigger), and only then store the file: a refused import leaves nothing behind (and a
        job refused later, at submit, has its file removed by the job service)."""
        _check_name(name)
        # Not on the event loop: parsing a header's JSON holds the GIL (so another process), hashing
        # 400 MiB does not (a thread).
        info = await in_helper_process(inspect_adapter_head, head_of(data), len(data), filename)
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        spec = build_spec(
            ImportSpec,
            model=model,
            name=name,
            adapter_kind=info.kind,
            file=digest,
            trigger=" ".join((trigger or info.trigger).split()),
            tags=info.tags,
        )
        await self.jobs.store_files([data])
        return spec

    async def _own(self, session: AsyncSession, user_id: int, name: str) -> Adapter:
        adapter = await library.owned_adapter(session, user_id, name)
        if adapter is None:
            raise UnknownToken(f"you have no token <{name}>; /library list shows yours")
        return adapter


def _check_name(name: str) -> None:
    if problem := adapter_name_problem(name):
        raise LibraryError(problem)
