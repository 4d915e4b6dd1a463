"""Getting online: logging in with the token (a refused token is one line, an unreachable Discord is
retried with backoff), and the invite URL with exactly what the bot needs."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord

from bot.settings import SettingsError
from generation.bundled import BUNDLED_MODEL_NAME

log = logging.getLogger(__name__)

# What the bot does in a channel: read it, post results and their buttons (messages with files and
# embeds, also in threads), and read the history to find a result it posted but never recorded.
# No privileged intent is needed: slash commands and buttons carry everything (no message content).
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
)
INVITE_SCOPES = ("bot", "applications.commands")
FIRST_RETRY_S = 2.0
LONGEST_RETRY_S = 120.0
BAD_TOKEN = (
    "Discord refused the token in DISCORD_TOKEN: copy it again from the developer portal "
    "(your application → Bot → Reset Token)"
)


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(application_id, permissions=REQUIRED_PERMISSIONS, scopes=INVITE_SCOPES)


async def login(client: discord.Client, token: str, *, first_retry_s: float = FIRST_RETRY_S) -> None:
    """Log in; a refused token raises SettingsError (exit 2), a network failure or a Discord outage is
    retried with exponential backoff (up to LONGEST_RETRY_S between tries) until it works."""
    delay = first_retry_s
    while True:
        try:
            await client.login(token)
            return
        except discord.LoginFailure:
            raise SettingsError(BAD_TOKEN) from None
        except (OSError, aiohttp.ClientError, TimeoutError, discord.DiscordServerError) as error:
            reason = str(error) or type(error).__name__
            log.warning("cannot reach Discord (%s); trying again in %.0f s", reason, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, LONGEST_RETRY_S)


def announce(client: discord.Client, default_model: str) -> None:
    """Who the bot is, the invite URL, and a warning when it serves the bundled demo model."""
    log.info("logged in as %s (application %s)", client.user, client.application_id)
    if client.application_id is not None:
        log.info("invite it to a server: %s", invite_url(client.application_id))
    if default_model == BUNDLED_MODEL_NAME:
        log.warning(
            "the default model is the bundled demo model (shapes and colours only): configure a real "
            "checkpoint (README: Use your own checkpoint) and set default_model"
        )
