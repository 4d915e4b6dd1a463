"""Server administration and personal settings in the database: bans, quotas, a server's default
model, the audit log, and each user's /settings defaults."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.jobs import ensure_user
from storage.models import AuditEntry, GuildBan, GuildSettings, Job, JobState, User, utcnow


async def guild_settings(session: AsyncSession, guild_id: int) -> GuildSettings:
    """The server's settings row, created empty (everything from the bot's settings) on first use."""
    row = await session.get(GuildSettings, guild_id)
    if row is None:
        row = GuildSettings(guild_id=guild_id, settings_json="{}")
        session.add(row)
        await session.flush()
    return row


async def find_guild_settings(session: AsyncSession, guild_id: int | None) -> GuildSettings | None:
    return await session.get(GuildSettings, guild_id) if guild_id is not None else None


async def blocked_terms(session: AsyncSession, guild_id: int | None) -> list[str]:
    row = await find_guild_settings(session, guild_id)
    return list(json.loads(row.settings_json).get("blocked_terms", [])) if row is not None else []


async def set_blocked_terms(session: AsyncSession, guild_id: int, terms: list[str]) -> None:
    row = await guild_settings(session, guild_id)
    extra = json.loads(row.settings_json)
    extra["blocked_terms"] = terms
    row.settings_json = json.dumps(extra, sort_keys=True)


async def ban(session: AsyncSession, guild_id: int, user_id: int, *, by: int, reason: str) -> bool:
    """Ban `user_id` in the server; False when they already were."""
    if await session.get(GuildBan, (guild_id, user_id)) is not None:
        return False
    session.add(GuildBan(guild_id=guild_id, user_id=user_id, banned_by=by, reason=reason))
    await session.flush()
    return True


async def unban(session: AsyncSession, guild_id: int, user_id: int) -> bool:
    result = await session.execute(
        delete(GuildBan).where(GuildBan.guild_id == guild_id, GuildBan.user_id == user_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def ban_of(session: AsyncSession, guild_id: int | None, user_id: int) -> GuildBan | None:
    """The server's ban of the user, if any (a global ban by the bot's owner counts everywhere)."""
    user = await session.get(User, user_id)
    if user is not None and user.banned:
        return GuildBan(guild_id=0, user_id=user_id, banned_by=0, reason="banned by the bot's owner")
    if guild_id is None:
        return None
    return await session.get(GuildBan, (guild_id, user_id))


async def bans_in(session: AsyncSession, guild_id: int) -> Sequence[GuildBan]:
    query = select(GuildBan).where(GuildBan.guild_id == guild_id).order_by(GuildBan.created_at)
    return (await session.scalars(query)).all()


async def jobs_since(session: AsyncSession, owner_id: int, guild_id: int | None, since: datetime) -> int:
    """How many jobs of the user in the server since `since` ran or will run: a refused or failed job
    does not count, nor one cancelled before it started."""
    ran = or_(
        Job.state.in_([JobState.QUEUED, JobState.RUNNING, JobState.DONE]),
        and_(Job.state == JobState.CANCELLED, Job.started_at.is_not(None)),
    )
    query = (
        select(func.count()).select_from(Job).where(Job.owner_id == owner_id, Job.created_at >= since, ran)
    )
    if guild_id is not None:
        query = query.where(Job.guild_id == guild_id)
    return int(await session.scalar(query) or 0)


async def gpu_seconds_since(session: AsyncSession, owner_id: int, since: datetime) -> float:
    query = select(func.coalesce(func.sum(Job.gpu_seconds), 0.0)).where(
        Job.owner_id == owner_id, Job.created_at >= since
    )
    return float(await session.scalar(query) or 0.0)


async def active_jobs(session: AsyncSession, owner_id: int) -> int:
    states = (JobState.QUEUED, JobState.RUNNING)
    query = select(func.count()).select_from(Job).where(Job.owner_id == owner_id, Job.state.in_(states))
    return int(await session.scalar(query) or 0)


def day_ago() -> datetime:
    return utcnow() - timedelta(days=1)


async def audit(
    session: AsyncSession,
    *,
    guild_id: int | None,
    actor_id: int,
    action: str,
    target: str = "",
    detail: str = "",
) -> None:
    session.add(AuditEntry(guild_id=guild_id, actor_id=actor_id, action=action, target=target, detail=detail))


async def audit_log(session: AsyncSession, guild_id: int, limit: int = 20) -> Sequence[AuditEntry]:
    query = (
        select(AuditEntry).where(AuditEntry.guild_id == guild_id).order_by(AuditEntry.id.desc()).limit(limit)
    )
    return (await session.scalars(query)).all()


async def personal_defaults(session: AsyncSession, user_id: int) -> dict[str, object]:
    user = await session.get(User, user_id)
    return json.loads(user.defaults_json) if user is not None else {}


async def set_personal_defaults(session: AsyncSession, user_id: int, defaults: dict[str, object]) -> None:
    user = await ensure_user(session, user_id)
    user.defaults_json = json.dumps(defaults, sort_keys=True)
