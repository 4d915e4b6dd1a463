"""The database schema: SQLAlchemy 2.0 typed declarative models.

Constraints live here (unique adapter names per owner, foreign keys, one image per job index), not only
in Python checks. Every user-owned row has an owner.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so Alembic migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in {JobState.DONE, JobState.FAILED, JobState.CANCELLED}


class AdapterKind(enum.StrEnum):
    LORA = "lora"
    EMBEDDING = "embedding"


class Visibility(enum.StrEnum):
    PRIVATE = "private"
    GUILD = "guild"
    PUBLIC = "public"


def _enum(kind: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no native ENUM type): adding a value needs no table rebuild.
    return Enum(
        kind, native_enum=False, length=16, values_callable=lambda members: [m.value for m in members]
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # Discord user id
    defaults_json: Mapped[str] = mapped_column(Text, default="{}")  # personal /settings
    jobs_submitted: Mapped[int] = mapped_column(Integer, default=0)
    gpu_seconds: Mapped[float] = mapped_column(default=0.0)
    banned: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GuildSettings(Base):
    __tablename__ = "guild_settings"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    default_model: Mapped[str | None] = mapped_column(String(64))
    max_queued_per_user: Mapped[int | None] = mapped_column(Integer)
    daily_jobs_per_user: Mapped[int | None] = mapped_column(Integer)  # jobs per user per 24 h
    fast_seconds_per_day: Mapped[int | None] = mapped_column(Integer)  # then Relax; None: all Fast
    settings_json: Mapped[str] = mapped_column(Text, default="{}")


class GuildBan(Base):
    """A user a server's administrators barred from using the bot in that server."""

    __tablename__ = "guild_bans"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    banned_by: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEntry(Base):
    """What an administrator did (ban, quota, model) or did to someone else's things."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    actor_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(100), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    spec_json: Mapped[str] = mapped_column(Text)
    state: Mapped[JobState] = mapped_column(_enum(JobState), default=JobState.QUEUED)
    parent_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    channel_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)  # where the result was posted (idempotence)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    relax: Mapped[bool] = mapped_column(default=False, server_default=false())  # runs when no Fast job waits
    gpu_seconds: Mapped[float | None] = mapped_column()  # measured by the worker, for Fast allowances
    stats_json: Mapped[str | None] = mapped_column(Text)  # what the worker measured (bot.job_stats)
    texts_json: Mapped[str | None] = mapped_column(Text)  # a text-only result: /describe's suggestions
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set just before the result is sent: after a crash, Discord is asked whether it arrived.
    delivery_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    images: Mapped[list[ImageRecord]] = relationship(back_populates="job", order_by="ImageRecord.index")

    # AUTOINCREMENT on SQLite: a forgotten user's job ids are never handed out again, so an old
    # message's buttons (and its attachment names) never point at someone else's new job.
    __table_args__ = (Index("ix_jobs_state_created", "state", "created_at"), {"sqlite_autoincrement": True})


class ImageRecord(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    file_hash: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    nsfw: Mapped[bool] = mapped_column(default=False, server_default=false())  # the safety checker's verdict
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    job: Mapped[Job] = relationship(back_populates="images")

    __table_args__ = (UniqueConstraint("job_id", "index"),)


class Adapter(Base):
    __tablename__ = "adapters"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[AdapterKind] = mapped_column(_enum(AdapterKind))
    name: Mapped[str] = mapped_column(String(32))  # used in prompts as <name>
    trigger_words: Mapped[str] = mapped_column(String(200), default="")
    # A kohya LoRA's most frequent caption tags, shown in /library show ("" for others).
    tags: Mapped[str] = mapped_column(String(200), default="", server_default="")
    base_model: Mapped[str] = mapped_column(String(64))
    file_hash: Mapped[str] = mapped_column(String(64))
    visibility: Mapped[Visibility] = mapped_column(_enum(Visibility), default=Visibility.PRIVATE)
    guild_id: Mapped[int | None] = mapped_column(BigInteger)  # the guild it is shared with, if any
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("owner_id", "name"),)


class PostedMessage(Base):
    """A message the bot posted for someone (a job's message, a U picture, a /show): what /forget deletes.

    `user_id` is who it was posted for, `job_id` whose pictures it shows; neither is a foreign key, so
    the record outlives the rows it names until /forget of either person removes it.
    """

    __tablename__ = "posted_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, index=True)
    channel_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
