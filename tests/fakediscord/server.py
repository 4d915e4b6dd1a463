"""A fake Discord (REST + gateway + CDN) on 127.0.0.1 that the real discord.py client talks to.

It enforces the rules a real bot trips over: the 3 s first-response deadline (10062), the 15 min
interaction token (50027), 2000-character content, 10 files and the upload limit per message,
5x5 components, 100-character custom_ids; and it can answer 429s. Deadlines are settable.

Besides its main server and channel it can hold a second server, private channels and DMs (`Place`),
and it works out whom each message would ping as Discord does: without `allowed_mentions` every
@everyone, @here, user and role mention in the content pings (`message["pings"]`, `fake.pings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import discord
import yarl
from aiohttp import web

from tests.fakediscord import payloads

MiB = 1024 * 1024
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


def _invalid_form(field_name: str, code: str, message: str) -> DiscordError:
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


class FakeDiscord:
    def __init__(
        self, *, response_deadline: float = 3.0, token_lifetime: float = 900.0, upload_limit: int = 10 * MiB
    ) -> None:
        self.response_deadline = response_deadline
        self.token_lifetime = token_lifetime
        self.upload_limit = upload_limit
        self.app_id = payloads.snowflake()
        self.bot_user = payloads.user(self.app_id, "dreamcord", bot=True)
        self.guild_id = payloads.snowflake()
        self.channel_id = payloads.snowflake()
        self.channel_nsfw = (
            False  # an age-restricted channel (sent on the next connect and with interactions)
        )
        self.users: dict[int, dict[str, Any]] = {}
        self.admins: set[int] = set()
        self.guild_channels: dict[int, list[int]] = {self.guild_id: [self.channel_id]}
        self.private_channels: set[int] = set()  # @everyone may not view them
        self.dm_channels: dict[int, int] = {}  # channel -> the user it is a DM with
        # (message id, ping, posted with a nonce) for every message created or edited
        self.pings: list[tuple[int, str, bool]] = []
        self.cdn_broken = False  # the CDN answers 404 for every attachment (expired or deleted uploads)
        # Discord drops a repeated nonce only for a few minutes; False: that window has passed
        self.nonce_window_open = True
        self.history_forbidden = False  # the bot lacks Read Message History (403 on channel history)
        self.messages: dict[int, dict[str, Any]] = {}  # id -> message payload
        self.attachments: dict[int, Attachment] = {}
        self.interactions: dict[int, Interaction] = {}
        self.commands: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.rate_limits: list[tuple[Callable[[str, str], bool], float]] = []
        self._changed = asyncio.Condition()
        self._sockets: list[web.WebSocketResponse] = []
        self._sequence = 0
        self._runner: web.AppRunner | None = None
        self.base = ""

    # ------------------------------------------------------------ life cycle
    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * MiB)
        app.add_routes(
            [
                web.get("/gateway", self._gateway),
                web.get("/cdn/attachments/{id}/{filename}", self._cdn),
                web.get("/api/v10/users/@me", self._me),
                web.get("/api/v10/oauth2/applications/@me", self._application),
                web.put("/api/v10/applications/{app}/commands", self._sync_commands),
                web.put("/api/v10/applications/{app}/guilds/{guild}/commands", self._sync_commands),
                web.get("/api/v10/applications/{app}/commands", self._list_commands),
                web.post("/api/v10/interactions/{id}/{token}/callback", self._callback),
                web.post("/api/v10/webhooks/{app}/{token}", self._followup),
                web.get("/api/v10/webhooks/{app}/{token}/messages/{message}", self._webhook_get),
                web.patch("/api/v10/webhooks/{app}/{token}/messages/{message}", self._webhook_edit),
                web.delete("/api/v10/webhooks/{app}/{token}/messages/{message}", self._webhook_delete),
                web.post("/api/v10/channels/{channel}/messages", self._channel_send),
                web.patch("/api/v10/channels/{channel}/messages/{message}", self._channel_edit),
                web.get("/api/v10/channels/{channel}/messages/{message}", self._channel_get),
                web.get("/api/v10/channels/{channel}/messages", self._channel_history),
                web.delete("/api/v10/channels/{channel}/messages/{message}", self._channel_delete),
                web.get("/api/v10/channels/{channel}", self._channel),
            ]
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        return self.base

    async def stop(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @contextlib.contextmanager
    def redirect_discord_py(self) -> Iterator[None]:
        """Point discord.py's REST base and gateway at this server (never `_set_api_version`)."""
        old_base, old_gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = f"{self.base}/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(
            f"{self.base.replace('http', 'ws')}/gateway"
        )
        try:
            yield
        finally:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway

    # ------------------------------------------------------------ the test's side
    def add_user(self, name: str, *, admin: bool = False) -> int:
        user_id = payloads.snowflake()
        self.users[user_id] = payloads.user(user_id, name)
        if admin:
            self.admins.add(user_id)
        return user_id

    @property
    def main(self) -> Place:
        return Place(self.guild_id, self.channel_id)

    async def add_guild(self) -> Place:
        """A second server (with one channel and every known user as a member), sent to the bot now."""
        guild_id, channel_id = payloads.snowflake(), payloads.snowflake()
        self.guild_channels[guild_id] = [channel_id]
        for socket in self._sockets:
            await self._dispatch_to(socket, "GUILD_CREATE", self._guild_payload(guild_id))
        return Place(guild_id, channel_id)

    async def add_private_channel(self) -> Place:
        """A channel of the main server that members cannot view (admins can)."""
        channel_id = payloads.snowflake()
        self.guild_channels[self.guild_id].append(channel_id)
        self.private_channels.add(channel_id)
        for socket in self._sockets:
            await self._dispatch_to(
                socket, "CHANNEL_CREATE", self._channel_payload(channel_id, self.guild_id)
            )
        return Place(self.guild_id, channel_id)

    def forge_message(self, place: Place, components: list[dict[str, Any]]) -> dict[str, Any]:
        """A bot message carrying `components` in `place`, as a hostile client could make the bot see
        custom_ids it never sent there."""
        return self._new_message({"content": "", "components": components}, [], channel_id=place.channel_id)

    def dm(self, user_id: int) -> Place:
        """The user's DM channel with the bot."""
        channel_id = next((c for c, u in self.dm_channels.items() if u == user_id), None)
        if channel_id is None:
            channel_id = payloads.snowflake()
            self.dm_channels[channel_id] = user_id
        return Place(None, channel_id)

    def rate_limit(self, method: str, path_fragment: str, *, retry_after: float = 0.05) -> None:
        """Answer the next matching REST request with a 429 (with a Via header, as Discord's are)."""
        self.rate_limits.append((lambda m, p: m == method and path_fragment in p, retry_after))

    async def slash(
        self,
        user_id: int,
        command: str,
        options: dict[str, Any] | None = None,
        attachments: dict[str, tuple[str, bytes, str]] | None = None,
        place: Place | None = None,
    ) -> Interaction:
        """Send an application command interaction, as a user typing `/command` would (in `place`)."""
        names = command.split()
        definition = self.commands[names[0]]
        data: dict[str, Any] = {
            "id": definition["id"],
            "name": names[0],
            "type": 1,
            "options": [],
            "resolved": {},
        }
        target = data["options"]
        option_specs = definition.get("options", [])
        for sub in names[1:]:  # subcommands nest their options one level down
            spec = next(o for o in option_specs if o["name"] == sub)
            entry: dict[str, Any] = {"name": sub, "type": spec["type"], "options": []}
            target.append(entry)
            target, option_specs = entry["options"], spec.get("options", [])
        types = {o["name"]: o["type"] for o in option_specs}
        for name, value in (options or {}).items():
            target.append(
                {"name": name, "type": types[name], "value": str(value) if types[name] == 6 else value}
            )
            if types[name] == 6:  # a user option: Discord sends the user (and member) in `resolved`
                resolved = data["resolved"]
                resolved.setdefault("users", {})[str(value)] = self.users[int(value)]  # type: ignore[index]
                member = payloads.member(self.users[int(value)])  # type: ignore[index]
                member.pop("user", None)
                resolved.setdefault("members", {})[str(value)] = member
        for name, (filename, blob, content_type) in (attachments or {}).items():
            attachment = self._store_attachment(filename, blob, content_type)
            target.append({"name": name, "type": 11, "value": str(attachment.id)})
            data["resolved"].setdefault("attachments", {})[str(attachment.id)] = attachment.payload(self.base)
        return await self._interact(user_id, 2, data, place=place)

    async def press(self, user_id: int, message_id: int, custom_id: str) -> Interaction:
        """Click a button on a message."""
        message = self.messages[message_id]
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(user_id, 3, data, message=message, place=self._place_of(message))

    async def submit_modal(self, user_id: int, opened_by: Interaction, values: dict[str, str]) -> Interaction:
        """Fill in and submit the form the bot opened in reply to `opened_by` (text inputs by custom_id)."""
        form = opened_by.modal
        assert form is not None, "the bot opened no form"
        rows = []
        for row in form["components"]:
            inputs = row["components"] if row["type"] == 1 else [row["component"]]  # action row or label
            for text_input in inputs:
                value = values.get(text_input["custom_id"], text_input.get("value", ""))
                rows.append(
                    {
                        "type": 1,
                        "components": [{"type": 4, "custom_id": text_input["custom_id"], "value": value}],
                    }
                )
        message = self.messages.get(opened_by.message_id) if opened_by.message_id else None
        place = Place(opened_by.guild_id, opened_by.channel_id)
        return await self._interact(
            user_id, 5, {"custom_id": form["custom_id"], "components": rows}, message=message, place=place
        )

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked on every change the bot makes); return it."""
        async with self._changed:
            return await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    def message(self, message_id: int | None) -> dict[str, Any] | None:
        return self.messages.get(message_id) if message_id else None

    def attachment_bytes(self, attachment: dict[str, Any]) -> bytes:
        return self.attachments[int(attachment["id"])].data

    def channel_messages(self, channel_id: int | None = None) -> list[dict[str, Any]]:
        channel = str(channel_id or self.channel_id)
        return [
            m for m in self.messages.values() if m["channel_id"] == channel and not m.get("_interaction_only")
        ]

    # ------------------------------------------------------------ gateway
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
        async for frame in socket:
            message = json.loads(frame.data)
            if message["op"] == 2:
                await self._send_ready(socket)
            elif message["op"] == 1:
                await socket.send_json({"op": 11})
            elif message["op"] == 6:
                await self._dispatch_to(socket, "RESUMED", {})
        self._sockets.remove(socket)
        return socket

    async def _send_ready(self, socket: web.WebSocketResponse) -> None:
        await self._dispatch_to(
            socket,
            "READY",
            {
                "v": 10,
                "user": self.bot_user,
                "guilds": [{"id": str(guild), "unavailable": True} for guild in self.guild_channels],
                "session_id": "fake-session",
                "resume_gateway_url": f"{self.base.replace('http', 'ws')}/gateway",
                "application": {"id": str(self.app_id), "flags": 0},
                "shard": [0, 1],
            },
        )
        for guild_id in self.guild_channels:
            await self._dispatch_to(socket, "GUILD_CREATE", self._guild_payload(guild_id))

    def _guild_payload(self, guild_id: int) -> dict[str, Any]:
        members = [payloads.member(u, admin=i in self.admins) for i, u in self.users.items()]
        channels = [self._channel_payload(c, guild_id) for c in self.guild_channels[guild_id]]
        return payloads.guild(guild_id, self.app_id, channels, members)

    def _channel_payload(self, channel_id: int, guild_id: int | None) -> dict[str, Any]:
        if guild_id is None:
            user = self.users[self.dm_channels[channel_id]]
            return {"id": str(channel_id), "type": 1, "recipients": [user], "last_message_id": None}
        channel = payloads.text_channel(channel_id, guild_id, nsfw=self.channel_nsfw)
        if channel_id in self.private_channels:  # deny View Channel to @everyone (its role id is the guild's)
            channel["permission_overwrites"] = [
                {"id": str(guild_id), "type": 0, "allow": "0", "deny": str(VIEW_CHANNEL)}
            ]
        return channel

    def _guild_of(self, channel_id: int) -> int | None:
        """The server a channel belongs to; None for a DM; a channel no test made is the main server's."""
        guild_id = next((g for g, channels in self.guild_channels.items() if channel_id in channels), None)
        if guild_id is None and channel_id not in self.dm_channels:
            return self.guild_id
        return guild_id

    def _place_of(self, message: dict[str, Any]) -> Place:
        guild = message.get("guild_id")
        return Place(int(guild) if guild else None, int(message["channel_id"]))

    async def _dispatch_to(self, socket: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        self._sequence += 1
        await socket.send_json({"op": 0, "t": event, "s": self._sequence, "d": data})

    async def _interact(
        self,
        user_id: int,
        kind: int,
        data: dict[str, Any],
        message: dict[str, Any] | None = None,
        place: Place | None = None,
    ) -> Interaction:
        place = place or self.main
        interaction = Interaction(
            id=payloads.snowflake(),
            token=f"token-{payloads.snowflake()}",
            type=kind,
            user_id=user_id,
            channel_id=place.channel_id,
            created=time.monotonic(),
            guild_id=place.guild_id,
        )
        if message is not None:
            interaction.message_id = int(message["id"])
        self.interactions[interaction.id] = interaction
        body: dict[str, Any] = {
            "id": str(interaction.id),
            "application_id": str(self.app_id),
            "type": kind,
            "data": data,
            "channel_id": str(place.channel_id),
            "channel": self._channel_payload(place.channel_id, place.guild_id),
            "token": interaction.token,
            "version": 1,
            "app_permissions": payloads.ALL_PERMISSIONS,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": self.upload_limit,
        }
        if place.guild_id is not None:
            body |= {
                "guild_id": str(place.guild_id),
                "member": payloads.member(self.users[user_id], admin=user_id in self.admins),
                "guild_locale": "en-US",
                "authorizing_integration_owners": {"0": str(place.guild_id)},
                "context": 0,
            }
        else:  # a DM with the bot: a user, no member, no server
            body |= {"user": self.users[user_id], "authorizing_integration_owners": {"0": "0"}, "context": 1}
        if message is not None:
            body["message"] = message
        for socket in self._sockets:
            await self._dispatch_to(socket, "INTERACTION_CREATE", body)
        return interaction

    # ------------------------------------------------------------ REST
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
            raise _invalid_form("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        if len(files) > 10:
            raise _invalid_form("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        if any(len(f.data) > self.upload_limit for f in files):
            raise DiscordError(413, 40005, "Request entity too large")
        rows = body.get("components") or []
        if len(rows) > 5 or any(len(row.get("components", [])) > 5 for row in rows):
            raise _invalid_form("components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
        for row in rows:
            for component in row.get("components", []):
                if len(component.get("custom_id") or "") > 100:
                    raise _invalid_form(
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
