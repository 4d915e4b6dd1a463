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
import time
from collections.abc import Callable, Iterator
from typing import Any

import discord
import yarl
from aiohttp import web

from tests.fakediscord import payloads
from tests.fakediscord.model import VIEW_CHANNEL, Attachment, Interaction, Place
from tests.fakediscord.rest import RestRoutes

MiB = 1024 * 1024


class FakeDiscord(RestRoutes):
    def __init__(
        self, *, response_deadline: float = 3.0, token_lifetime: float = 900.0, upload_limit: int = 10 * MiB
    ) -> None:
        self.response_deadline = response_deadline
        self.token_lifetime = token_lifetime
        self.upload_limit = upload_limit
        self.bot_token = "fake-token"
        self.sessions_started = (
            0  # READY events sent: one per (re)connect of a bot  # the one token /users/@me accepts
        )
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
        self.sessions_started += 1
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
        async with self._changed:  # whoever waits for a session to start
            self._changed.notify_all()

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
