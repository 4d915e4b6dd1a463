"""The fake Discord's REST routes (and the CDN): what the bot's HTTP calls reach. A mixin of
FakeDiscord (tests/fakediscord/server.py), which holds the state they read and change."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakediscord import payloads
from tests.fakediscord.model import Attachment, DiscordError, Interaction, invalid_form, pings_of

MiB = 1024 * 1024


class RestRoutes:
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            self.requests.append((request.method, request.path))
            for index, (matches, retry_after) in enumerate(self.rate_limits):
                if matches(request.method, request.path):
                    del self.rate_limits[index]
                    body = {
                        "message": "You are being rate limited.",
                        "retry_after": retry_after,
                        "global": False,
                    }
                    headers = {
                        "Via": "1.1 google",
                        "Retry-After": str(retry_after),
                        "X-RateLimit-Scope": "user",
                    }
                    return self._json(body, status=429, headers=headers)
        try:
            response = await handler(request)
        except DiscordError as error:
            self._record_error(request, error.code)
            body = {"code": error.code, "message": error.message}
            if error.errors:
                body["errors"] = error.errors
            response = self._json(body, status=error.status)
        async with self._changed:
            self._changed.notify_all()
        return response

    def _record_error(self, request: web.Request, code: int) -> None:
        for interaction in self.interactions.values():
            if interaction.token in request.path or str(interaction.id) in request.path:
                interaction.errors.append(code)

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        # Exactly "application/json": discord.py parses nothing else (aiohttp's json_response adds a charset).
        return web.Response(
            body=json.dumps(body).encode(),
            status=status,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    async def _cdn(self, request: web.Request) -> web.Response:
        attachment = self.attachments.get(int(request.match_info["id"]))
        if attachment is None or self.cdn_broken:
            return web.Response(status=404)
        return web.Response(body=attachment.data, headers={"Content-Type": attachment.content_type})

    async def _me(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bot {self.bot_token}":  # as Discord answers
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return self._json(self.bot_user)

    async def _application(self, request: web.Request) -> web.Response:
        return self._json(payloads.application(self.app_id, self.bot_user))

    async def _list_commands(self, request: web.Request) -> web.Response:
        return self._json(list(self.commands.values()))

    async def _sync_commands(self, request: web.Request) -> web.Response:
        self.commands = {}
        for command in await request.json():
            self.commands[command["name"]] = {
                **command,
                "id": str(payloads.snowflake()),
                "application_id": str(self.app_id),
                "version": "1",
            }
        return self._json(list(self.commands.values()))

    async def _channel(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel"])
        return self._json(self._channel_payload(channel_id, self._guild_of(channel_id)))

    def _interaction_for_token(self, token: str, *, check_expiry: bool = True) -> Interaction:
        interaction = next((i for i in self.interactions.values() if i.token == token), None)
        if interaction is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        if check_expiry and time.monotonic() - interaction.created > self.token_lifetime:
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        return interaction

    async def _callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(int(request.match_info["id"]))
        if interaction is None or interaction.token != request.match_info["token"]:
            raise DiscordError(404, 10062, "Unknown interaction")
        if time.monotonic() - interaction.created > self.response_deadline:
            raise DiscordError(404, 10062, "Unknown interaction")
        if interaction.response_type is not None:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        body, files = await self._read_body(request)
        kind, data = body["type"], body.get("data") or {}
        interaction.response_type = kind
        interaction.ephemeral = bool(data.get("flags", 0) & 64)
        message: dict[str, Any] | None = None
        if kind == 9:  # a form: the user fills it in with submit_modal
            interaction.modal = data
        elif kind in (4, 5):  # a reply, or "thinking…" to be edited later
            message = self._new_message(
                data if kind == 4 else {"content": "", "flags": data.get("flags", 0)},
                files,
                channel_id=interaction.channel_id,
            )
            message["interaction_loading"] = kind == 5
            interaction.original_id = int(message["id"])
        elif (
            kind in (6, 7) and interaction.message_id in self.messages
        ):  # (deferred) update of the button's message
            interaction.original_id = interaction.message_id
            if kind == 7:
                message = self._edit_message(self.messages[interaction.message_id], data, files)
        response = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_id": message["id"] if message else None,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": interaction.ephemeral,
            },
            "resource": {"type": kind, "message": message} if message else None,
        }
        return self._json(response)

    async def _followup(self, request: web.Request) -> web.Response:
        interaction = self._interaction_for_token(request.match_info["token"])
        if interaction.response_type is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        body, files = await self._read_body(request)
        message = self._new_message(body, files, channel_id=interaction.channel_id)
        interaction.followup_ids.append(int(message["id"]))
        return self._json(message)

    def _webhook_message(self, request: web.Request) -> tuple[Interaction, dict[str, Any]]:
        interaction = self._interaction_for_token(request.match_info["token"])
        key = request.match_info["message"]
        message_id = interaction.original_id if key == "@original" else int(key)
        if message_id is None or message_id not in self.messages:
            raise DiscordError(404, 10008, "Unknown Message")
        return interaction, self.messages[message_id]

    async def _webhook_get(self, request: web.Request) -> web.Response:
        return self._json(self._webhook_message(request)[1])

    async def _webhook_edit(self, request: web.Request) -> web.Response:
        _, message = self._webhook_message(request)
        body, files = await self._read_body(request)
        return self._json(self._edit_message(message, body, files))

    async def _webhook_delete(self, request: web.Request) -> web.Response:
        _, message = self._webhook_message(request)
        del self.messages[int(message["id"])]
        return web.Response(status=204)

    async def _channel_send(self, request: web.Request) -> web.Response:
        body, files = await self._read_body(request)
        nonce = body.get("nonce")
        if nonce and body.get("enforce_nonce") and self.nonce_window_open:
            for existing in self.messages.values():
                if existing.get("nonce") == nonce:
                    return self._json(existing)
        message = self._new_message(body, files, channel_id=int(request.match_info["channel"]))
        return self._json(message)

    async def _channel_get(self, request: web.Request) -> web.Response:
        message = self.messages.get(int(request.match_info["message"]))
        if message is None:
            raise DiscordError(404, 10008, "Unknown Message")
        return self._json(message)

    async def _channel_history(self, request: web.Request) -> web.Response:
        """Like Discord: up to `limit` messages right after `after` (or before `before`, or the newest),
        newest first."""
        if self.history_forbidden:
            raise DiscordError(403, 50001, "Missing Access")
        query = request.query
        limit = min(int(query.get("limit", 50)), 100)
        found = sorted(self.channel_messages(int(request.match_info["channel"])), key=lambda m: int(m["id"]))
        if "after" in query:
            found = [m for m in found if int(m["id"]) > int(query["after"])][:limit]
        else:
            if "before" in query:
                found = [m for m in found if int(m["id"]) < int(query["before"])]
            found = found[-limit:]
        return self._json(found[::-1])

    async def _channel_delete(self, request: web.Request) -> web.Response:
        message_id = int(request.match_info["message"])
        if self.messages.pop(message_id, None) is None:
            raise DiscordError(404, 10008, "Unknown Message")
        return web.Response(status=204)

    async def _channel_edit(self, request: web.Request) -> web.Response:
        message = self.messages.get(int(request.match_info["message"]))
        if message is None:
            raise DiscordError(404, 10008, "Unknown Message")
        body, files = await self._read_body(request)
        return self._json(self._edit_message(message, body, files))

    # ------------------------------------------------------------ messages
    async def _read_body(self, request: web.Request) -> tuple[dict[str, Any], list[Attachment]]:
        if not request.content_type.startswith("multipart/"):
            return (await request.json() if request.can_read_body else {}), []
        body: dict[str, Any] = {}
        files: list[Attachment] = []
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":
                body = json.loads(await part.text())
            else:
                data = await part.read()
                files.append(
                    Attachment(
                        payloads.snowflake(),
                        part.filename or "file",
                        bytes(data),
                        part.headers.get("Content-Type", "application/octet-stream"),
                    )
                )
        return body, files

    def _store_attachment(self, filename: str, data: bytes, content_type: str) -> Attachment:
        attachment = Attachment(payloads.snowflake(), filename, data, content_type)
        self.attachments[attachment.id] = attachment
        return attachment

    def _validate(self, body: dict[str, Any], files: list[Attachment]) -> None:
        if len(body.get("content") or "") > 2000:
            raise invalid_form("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        if len(files) > 10:
            raise invalid_form("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        if any(len(f.data) > self.upload_limit for f in files):
            raise DiscordError(413, 40005, "Request entity too large")
        rows = body.get("components") or []
        if len(rows) > 5 or any(len(row.get("components", [])) > 5 for row in rows):
            raise invalid_form("components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
        for row in rows:
            for component in row.get("components", []):
                if len(component.get("custom_id") or "") > 100:
                    raise invalid_form(
                        "components", "BASE_TYPE_MAX_LENGTH", "custom_id must be 100 or fewer in length."
                    )

    def _new_message(
        self, body: dict[str, Any], files: list[Attachment], channel_id: int | None = None
    ) -> dict[str, Any]:
        self._validate(body, files)
        message_id = payloads.snowflake()
        for attachment in files:
            self.attachments[attachment.id] = attachment
        channel_id = channel_id or self.channel_id
        guild_id = self._guild_of(channel_id)
        message = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "guild_id": str(guild_id) if guild_id else None,
            "author": self.bot_user,
            "content": body.get("content") or "",
            "embeds": body.get("embeds") or [],
            "attachments": [a.payload(self.base) for a in files],
            "components": body.get("components") or [],
            "flags": body.get("flags") or 0,
            "nonce": body.get("nonce"),
            "type": 0,
            "timestamp": "2026-01-01T00:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "edits": 0,
        }
        self._record_pings(message, body)
        self.messages[message_id] = message
        return message

    def _record_pings(self, message: dict[str, Any], body: dict[str, Any]) -> None:
        if "content" not in body:
            return  # an edit that leaves the text alone mentions nobody anew
        message["pings"] = pings_of(body)
        self.pings.extend((int(message["id"]), ping, bool(message.get("nonce"))) for ping in message["pings"])

    def _edit_message(
        self, message: dict[str, Any], body: dict[str, Any], files: list[Attachment]
    ) -> dict[str, Any]:
        kept_ids = {
            str(a["id"])
            for a in body.get("attachments", [])
            if str(a.get("id", "")).isdigit() and int(a["id"]) > 10
        }
        kept = (
            [a for a in message["attachments"] if a["id"] in kept_ids]
            if "attachments" in body
            else message["attachments"]
        )
        new_attachments = [a.payload(self.base) for a in files]
        self._validate({**message, **body}, files)
        for attachment in files:
            self.attachments[attachment.id] = attachment
        for key in ("content", "embeds", "components", "flags"):
            if key in body:
                message[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        self._record_pings(message, body)
        message["attachments"] = kept + new_attachments
        message["edited_timestamp"] = "2026-01-01T00:00:01+00:00"
        message["interaction_loading"] = False
        message["edits"] += 1
        message.setdefault("history", []).append(  # what each edit showed, for tests of progress
            {"content": message["content"], "files": [a["filename"] for a in message["attachments"]]}
        )
        return message
