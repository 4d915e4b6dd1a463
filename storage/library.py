"""Queries on the adapter library: each user's LoRAs and embeddings, and who may use which.

The rule everywhere: a private adapter is visible only to its owner; a guild-shared one to members of
that guild; a public one to everyone. Writes (rename, delete, share) are the owner's alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage.jobs import ensure_user
from storage.models import Adapter, AdapterKind, Visibility

SERVER_OWNER_ID = 0  # the owner of entries mirrored from the server's LoRA folders (no Discord user)


async def add_adapter(
    session: AsyncSession,
    *,
    owner_id: int,
    kind: AdapterKind,
    name: str,
    base_model: str,
    file_hash: str,
    trigger_words: str = "",
    tags: str = "",
) -> Adapter:
    """Insert a private adapter; IntegrityError if the owner already has one of that name."""
    await ensure_user(session, owner_id)
    adapter = Adapter(
        owner_id=owner_id,
        kind=kind,
        name=name,
        base_model=base_model,
        file_hash=file_hash,
        trigger_words=trigger_words,
        tags=tags,
        visibility=Visibility.PRIVATE,
    )
    session.add(adapter)
    await session.flush()
    return adapter


async def owned_adapter(session: AsyncSession, owner_id: int, name: str) -> Adapter | None:
    result = await session.scalars(select(Adapter).where(Adapter.owner_id == owner_id, Adapter.name == name))
    return result.first()


def _visible_to(user_id: int, guild_id: int | None) -> ColumnElement[bool]:
    shared_here = and_(Adapter.visibility == Visibility.GUILD, Adapter.guild_id == guild_id)
    clauses = [Adapter.owner_id == user_id, Adapter.visibility == Visibility.PUBLIC]
    if guild_id is not None:
        clauses.append(shared_here)
    return or_(*clauses)


async def usable_adapter(
    session: AsyncSession, user_id: int, name: str, guild_id: int | None
) -> Adapter | None:
    """The adapter `<name>` means for this user here: their own first, else the oldest shared with them."""
    own = await owned_adapter(session, user_id, name)
    if own is not None:
        return own
    result = await session.scalars(
        select(Adapter).where(Adapter.name == name, _visible_to(user_id, guild_id)).order_by(Adapter.id)
    )
    return result.first()


async def visible_adapters(session: AsyncSession, user_id: int, guild_id: int | None) -> Sequence[Adapter]:
    """Everything the user may use here: their own, then shared ones, each group by name."""
    result = await session.scalars(
        select(Adapter)
        .where(_visible_to(user_id, guild_id))
        .order_by((Adapter.owner_id != user_id), Adapter.name, Adapter.id)
    )
    return result.all()


async def adapters_of(session: AsyncSession, owner_id: int) -> Sequence[Adapter]:
    result = await session.scalars(select(Adapter).where(Adapter.owner_id == owner_id).order_by(Adapter.name))
    return result.all()


async def adapters_using_file(session: AsyncSession, file_hash: str) -> int:
    result = await session.scalars(select(Adapter.id).where(Adapter.file_hash == file_hash))
    return len(result.all())
