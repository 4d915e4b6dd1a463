"""What the fake Discord keeps and answers with: places (server + channel), attachments,
interactions, the errors it returns, and whom a message would ping."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MENTION_RE = re.compile(r"@(everyone|here)|<@!?(\d+)>|<@&(\d+)>")
VIEW_CHANNEL = 1 << 10


def pings_of(body: dict[str, Any]) -> list[str]:
    """Whom Discord would ping for this message body: "everyone", "here", "user:ID", "role:ID"."""
    allowed = body.get("allowed_mentions")
    parse = {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse") or [])
    users = {str(u) for u in (allowed or {}).get("users") or []}
    roles = {str(r) for r in (allowed or {}).get("roles") or []}
    found = []
    for match in MENTION_RE.finditer(body.get("content") or ""):
        everyone, user, role = match.groups()
        if everyone and "everyone" in parse:
            found.append(everyone)
        elif user and ("users" in parse or user in users):
            found.append(f"user:{user}")
        elif role and ("roles" in parse or role in roles):
            found.append(f"role:{role}")
    return found


@dataclass(frozen=True)
class Place:
    """Where an interaction happens: a channel of a server, or a DM (guild_id None)."""

    guild_id: int | None
    channel_id: int


class DiscordError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors


def invalid_form(field_name: str, code: str, message: str) -> DiscordError:
    """Discord's 50035 with its nested `errors` object naming the field."""
    return DiscordError(
        400, 50035, "Invalid Form Body", {field_name: {"_errors": [{"code": code, "message": message}]}}
    )


@dataclass
class Attachment:
    id: int
    filename: str
    data: bytes
    content_type: str

    def payload(self, base: str) -> dict[str, Any]:
        url = f"{base}/cdn/attachments/{self.id}/{self.filename}"
        return {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": url,
            "proxy_url": url,
            "content_type": self.content_type,
        }


@dataclass
class Interaction:
    """One interaction the fake sent, and everything the bot did in reply."""

    id: int
    token: str
    type: int
    user_id: int
    channel_id: int
    created: float
    response_type: int | None = None
    ephemeral: bool = False
    original_id: int | None = None
    message_id: int | None = None  # the message whose button was pressed
    followup_ids: list[int] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)  # Discord error codes the bot received
    modal: dict[str, Any] | None = None  # the form the bot opened in reply (callback type 9)
    guild_id: int | None = None  # None: in a DM
