"""`<token>`s in a prompt resolved against the library: each names the exact file, kind and trigger
it means for this user here, or the user hears which tokens they have."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.tickets import UnknownToken
from generation.specs import PromptedSpec
from storage import library

PromptedSpecT = TypeVar("PromptedSpecT", bound=PromptedSpec)


async def resolve_adapters(
    session: AsyncSession, spec: PromptedSpecT, owner_id: int, guild_id: int | None
) -> PromptedSpecT:
    """Fill each `<name>` of the spec with the file, kind and trigger of the adapter it means here."""
    resolved = []
    for ref in spec.adapters:
        adapter = await library.usable_adapter(session, owner_id, ref.name, guild_id)
        if adapter is None:
            raise UnknownToken(await _unknown_token_message(session, ref.name, owner_id, guild_id))
        if adapter.base_model != spec.model:
            raise UnknownToken(
                f"<{ref.name}> was made for model {adapter.base_model!r}, not {spec.model!r}; "
                f"add --model {adapter.base_model} or pick another token"
            )
        resolved.append(
            ref.model_copy(
                update={
                    "kind": adapter.kind.value,
                    "file": adapter.file_hash,
                    "trigger": adapter.trigger_words,
                }
            )
        )
    return spec.model_copy(update={"adapters": tuple(resolved)})


async def _unknown_token_message(
    session: AsyncSession, name: str, owner_id: int, guild_id: int | None
) -> str:
    names = sorted({f"<{a.name}>" for a in await library.visible_adapters(session, owner_id, guild_id)})
    if not names:
        return f"<{name}> is not in your library, which is empty: train a token with /train first"
    return f"<{name}> is not in your library; your tokens here: {', '.join(names)}"
