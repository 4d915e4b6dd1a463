"""Getting online: the token is checked once (a refusal is a SettingsError, exit 2), a network failure is
retried with growing waits, and the invite URL asks for exactly what the bot uses."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs, urlparse

import aiohttp
import discord
import pytest

from bot.settings import SettingsError
from bot.startup import REQUIRED_PERMISSIONS, invite_url, login


class FlakyClient:
    """Fails to log in with each of `failures` in turn, then succeeds."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.tries = 0

    async def login(self, token: str) -> None:
        self.tries += 1
        if self.failures:
            raise self.failures.pop(0)


async def test_network_failures_are_retried_with_growing_waits(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", no_wait)
    client = FlakyClient(
        aiohttp.ClientConnectionError("cannot connect"), OSError("network unreachable"), TimeoutError()
    )
    with caplog.at_level(logging.WARNING):
        await login(client, "token", first_retry_s=2.0)  # type: ignore[arg-type]
    assert client.tries == 4
    assert waits == [2.0, 4.0, 8.0]
    assert "cannot reach Discord (network unreachable); trying again in 4 s" in caplog.text


async def test_a_refused_token_is_not_retried() -> None:
    client = FlakyClient(discord.LoginFailure("Improper token has been passed."))
    with pytest.raises(SettingsError, match="Discord refused the token in DISCORD_TOKEN"):
        await login(client, "bad")  # type: ignore[arg-type]
    assert client.tries == 1


def test_the_invite_url_asks_for_the_bot_and_its_commands_and_six_permissions() -> None:
    query = parse_qs(urlparse(invite_url(1234)).query)
    assert query["client_id"] == ["1234"]
    assert query["scope"] == ["bot applications.commands"]
    granted = discord.Permissions(int(query["permissions"][0]))
    assert granted == REQUIRED_PERMISSIONS
    assert {name for name, on in granted if on} == {
        "read_messages",  # View Channel
        "send_messages",
        "send_messages_in_threads",
        "embed_links",
        "attach_files",
        "read_message_history",
    }
    assert not granted.administrator and not granted.mention_everyone
