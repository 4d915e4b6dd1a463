"""Who may use the bot and how much: server bans and quotas, a server's default model, each user's
saved defaults, and the audit log of what administrators did. Discord-free (the cogs call it)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.settings import Settings
from generation.errors import DreamcordError
from generation.prompt import (
    MAX_OPTION_SETS,
    ParsedPrompt,
    check_option_name,
    check_preference,
    parse_defaults,
    with_defaults,
)
from storage import admin as store
from storage.db import write_transaction
from storage.models import AuditEntry, GuildBan


class Banned(DreamcordError):
    """The user may not use the bot in this server."""


class QuotaExceeded(DreamcordError):
    """The user reached one of the server's limits."""


@dataclass(frozen=True)
class Quotas:
    max_queued_per_user: int  # the server's limit, never above the bot's own
    daily_jobs_per_user: int | None
    fast_seconds_per_day: int | None = None  # GPU-seconds per person per 24 h before Relax

    def describe(self) -> str:
        daily = f"{self.daily_jobs_per_user} per day" if self.daily_jobs_per_user else "no daily limit"
        fast = (
            f"{self.fast_seconds_per_day} fast GPU-seconds a day, then relax"
            if self.fast_seconds_per_day
            else "all fast"
        )
        return f"{self.max_queued_per_user} jobs queued or running per person, {daily}, {fast}"


class BlockedPrompt(DreamcordError):
    """The prompt contains a word or pattern the server does not allow."""


MAX_BLOCKED_TERMS, MAX_TERM_CHARS = 200, 100
REGEX_PREFIX = "re:"


def term_pattern(term: str) -> re.Pattern[str]:
    """A blocked term as a regex: "re:…" as written, anything else as a whole word or phrase."""
    if term.startswith(REGEX_PREFIX):
        return re.compile(term.removeprefix(REGEX_PREFIX), re.IGNORECASE)
    return re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE)


def check_term(term: str) -> str:
    term = term.strip()
    if not term or len(term) > MAX_TERM_CHARS:
        raise DreamcordError(f"a blocked term is 1-{MAX_TERM_CHARS} characters")
    try:
        term_pattern(term)
    except re.error as error:
        raise DreamcordError(f"{term!r} is not a valid regular expression: {error}") from None
    return term


def blocked_term(prompt: str, terms: list[str]) -> str | None:
    """The first blocked term the prompt contains, or None."""
    return next((term for term in terms if term_pattern(term).search(prompt)), None)


async def refuse_if_banned(session: AsyncSession, user_id: int, guild_id: int | None) -> None:
    """Raise Banned (with the reason given, if any) when the user is banned here."""
    ban = await store.ban_of(session, guild_id, user_id)
    if ban is not None:
        reason = f" ({ban.reason})" if ban.reason else ""
        raise Banned(f"you are banned from using dreamcord here{reason}")


async def check_may_submit(
    session: AsyncSession, owner_id: int, guild_id: int | None, bot_max_queued: int, prompt: str = ""
) -> None:
    """Raise Banned, BlockedPrompt or QuotaExceeded before a job is stored (inside its transaction)."""
    await refuse_if_banned(session, owner_id, guild_id)
    term = blocked_term(prompt, await store.blocked_terms(session, guild_id)) if prompt else None
    if term is not None:
        shown = "a pattern this server blocks" if term.startswith(REGEX_PREFIX) else f"“{term}”"
        raise BlockedPrompt(f"this server does not allow {shown} in prompts; please rephrase")
    settings = await store.find_guild_settings(session, guild_id)
    if settings is None:
        return
    max_queued = min(settings.max_queued_per_user or bot_max_queued, bot_max_queued)
    active = await store.active_jobs(session, owner_id)
    if active >= max_queued:
        raise QuotaExceeded(
            f"this server allows {max_queued} jobs queued or running per person and you have {active}; "
            "wait for one to finish or cancel one with /queue"
        )
    daily = settings.daily_jobs_per_user
    if daily is not None and await store.jobs_since(session, owner_id, guild_id, store.day_ago()) >= daily:
        raise QuotaExceeded(
            f"this server allows {daily} jobs per person per 24 hours; please try again later"
        )


async def runs_relaxed(session: AsyncSession, owner_id: int, guild_id: int | None) -> bool:
    """Relax once the user's GPU time of the last 24 h reached the server's Fast allowance."""
    settings = await store.find_guild_settings(session, guild_id)
    if settings is None or settings.fast_seconds_per_day is None:
        return False
    return await store.gpu_seconds_since(session, owner_id, store.day_ago()) >= settings.fast_seconds_per_day


def refuse_turbo_in_relax(spec: object, relax: bool) -> None:
    """--turbo is a Fast mode, counted like Fast: refused once the user's Fast time is used up."""
    if relax and getattr(spec, "turbo", False):
        raise QuotaExceeded(
            "--turbo runs on Fast time, and yours here is used up for today; leave out --turbo and "
            "the job runs in Relax"
        )


class AdminService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    # ------------------------------------------------------------ anyone
    async def check_not_banned(self, user_id: int, guild_id: int | None) -> None:
        async with self.sessions() as session:
            await refuse_if_banned(session, user_id, guild_id)

    async def prompt_defaults(self, user_id: int, guild_id: int | None) -> ParsedPrompt | None:
        """The user's saved defaults, with the server's default model when they name none."""
        async with self.sessions() as session:
            saved = (await store.personal_defaults(session, user_id)).get("flags", "")
            guild = await store.find_guild_settings(session, guild_id)
        defaults = parse_defaults(str(saved)) if saved else None
        if guild is not None and guild.default_model and guild.default_model in self.settings.models:
            server = ParsedPrompt(text="defaults", model=guild.default_model)
            defaults = with_defaults(defaults, server) if defaults else server
        return defaults

    async def saved_flags(self, user_id: int) -> str:
        async with self.sessions() as session:
            return str((await store.personal_defaults(session, user_id)).get("flags", ""))

    async def save_flags(self, user_id: int, flags: str) -> None:
        """Save defaults written as prompt flags (checked first; "" clears them)."""
        if flags:
            parsed = parse_defaults(flags)
            if parsed.model is not None:
                self.settings.model(parsed.model)  # unknown model: a clear error now, not at /imagine
        await self._update_personal(user_id, flags=flags or None)

    async def remix_on(self, user_id: int) -> bool:
        """Remix mode: V, 🔄 and Vary open a form with the prompt to edit before the job starts."""
        async with self.sessions() as session:
            return bool((await store.personal_defaults(session, user_id)).get("remix", False))

    async def set_remix(self, user_id: int, on: bool) -> None:
        await self._update_personal(user_id, remix=True if on else None)

    async def preferences(self, user_id: int) -> tuple[str, dict[str, str]]:
        """The user's /prefer suffix and named option sets."""
        async with self.sessions() as session:
            personal = await store.personal_defaults(session, user_id)
        options = personal.get("options", {})
        return str(personal.get("suffix", "")), dict(options) if isinstance(options, dict) else {}

    async def set_suffix(self, user_id: int, suffix: str | None) -> None:
        await self._update_personal(user_id, suffix=check_preference(suffix, "suffix") if suffix else None)

    async def set_option(self, user_id: int, name: str, value: str | None) -> dict[str, str]:
        """Add, change or (value None) remove a named option set; the sets afterwards."""
        _, options = await self.preferences(user_id)
        name = check_option_name(name)
        if value is None:
            if options.pop(name, None) is None:
                raise DreamcordError(f"you have no option set --{name}")
        else:
            if name not in options and len(options) >= MAX_OPTION_SETS:
                raise DreamcordError(f"you have {MAX_OPTION_SETS} option sets already; unset one first")
            options[name] = check_preference(value, "option set")
        await self._update_personal(user_id, options=options or None)
        return options

    async def _update_personal(self, user_id: int, **changes: object) -> None:
        """Change some of the user's personal settings (None removes one), keeping the others."""
        async with write_transaction(self.sessions) as session:
            personal = await store.personal_defaults(session, user_id)
            personal.update(changes)
            kept = {key: value for key, value in personal.items() if value is not None}
            await store.set_personal_defaults(session, user_id, kept)

    # ------------------------------------------------------------ administrators
    async def set_model(self, guild_id: int, actor_id: int, model: str | None) -> None:
        if model is not None:
            self.settings.model(model)
        async with write_transaction(self.sessions) as session:
            (await store.guild_settings(session, guild_id)).default_model = model
            await store.audit(
                session, guild_id=guild_id, actor_id=actor_id, action="model", detail=model or "(bot default)"
            )

    async def set_quotas(
        self,
        guild_id: int,
        actor_id: int,
        *,
        max_queued: int | None,
        daily_jobs: int | None,
        fast_seconds: int | None = None,
    ) -> Quotas:
        async with write_transaction(self.sessions) as session:
            row = await store.guild_settings(session, guild_id)
            row.max_queued_per_user, row.daily_jobs_per_user = max_queued, daily_jobs
            row.fast_seconds_per_day = fast_seconds
            detail = f"max_queued={max_queued} daily_jobs={daily_jobs} fast_seconds={fast_seconds}"
            await store.audit(session, guild_id=guild_id, actor_id=actor_id, action="quota", detail=detail)
        return await self.quotas(guild_id)

    async def quotas(self, guild_id: int | None) -> Quotas:
        bot_max = self.settings.max_queued_per_user
        async with self.sessions() as session:
            row = await store.find_guild_settings(session, guild_id)
        if row is None:
            return Quotas(bot_max, None)
        max_queued = min(row.max_queued_per_user or bot_max, bot_max)
        return Quotas(max_queued, row.daily_jobs_per_user, row.fast_seconds_per_day)

    async def guild_model(self, guild_id: int | None) -> str:
        async with self.sessions() as session:
            row = await store.find_guild_settings(session, guild_id)
        chosen = row.default_model if row is not None else None
        return (
            chosen if chosen is not None and chosen in self.settings.models else self.settings.default_model
        )

    async def ban(self, guild_id: int, actor_id: int, user_id: int, reason: str) -> bool:
        if user_id == actor_id:
            raise DreamcordError("you cannot ban yourself")
        async with write_transaction(self.sessions) as session:
            added = await store.ban(session, guild_id, user_id, by=actor_id, reason=reason)
            if added:
                await store.audit(
                    session,
                    guild_id=guild_id,
                    actor_id=actor_id,
                    action="ban",
                    target=str(user_id),
                    detail=reason,
                )
        return added

    async def unban(self, guild_id: int, actor_id: int, user_id: int) -> bool:
        async with write_transaction(self.sessions) as session:
            removed = await store.unban(session, guild_id, user_id)
            if removed:
                await store.audit(
                    session, guild_id=guild_id, actor_id=actor_id, action="unban", target=str(user_id)
                )
        return removed

    async def block(self, guild_id: int, actor_id: int, term: str) -> list[str]:
        term = check_term(term)
        async with write_transaction(self.sessions) as session:
            terms = await store.blocked_terms(session, guild_id)
            if term not in terms:
                if len(terms) >= MAX_BLOCKED_TERMS:
                    raise DreamcordError(f"a server may block at most {MAX_BLOCKED_TERMS} terms")
                terms.append(term)
                await store.set_blocked_terms(session, guild_id, terms)
                await store.audit(session, guild_id=guild_id, actor_id=actor_id, action="block", detail=term)
        return terms

    async def unblock(self, guild_id: int, actor_id: int, term: str) -> list[str]:
        async with write_transaction(self.sessions) as session:
            terms = await store.blocked_terms(session, guild_id)
            if term.strip() in terms:
                terms.remove(term.strip())
                await store.set_blocked_terms(session, guild_id, terms)
                await store.audit(
                    session, guild_id=guild_id, actor_id=actor_id, action="unblock", detail=term
                )
        return terms

    async def blocked(self, guild_id: int) -> list[str]:
        async with self.sessions() as session:
            return await store.blocked_terms(session, guild_id)

    async def bans(self, guild_id: int) -> list[GuildBan]:
        async with self.sessions() as session:
            return list(await store.bans_in(session, guild_id))

    async def audit_log(self, guild_id: int) -> list[AuditEntry]:
        async with self.sessions() as session:
            return list(await store.audit_log(session, guild_id))
