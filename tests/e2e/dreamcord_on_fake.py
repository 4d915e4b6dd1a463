"""The real `dreamcord` command in a process of its own, with discord.py pointed at a fake Discord
(DREAMCORD_FAKE_DISCORD=http://127.0.0.1:PORT): what an operator runs, signals and all."""

from __future__ import annotations

import os
import sys

import discord
import yarl

from bot.cli import main

if __name__ == "__main__":
    base = os.environ["DREAMCORD_FAKE_DISCORD"]
    discord.http.Route.BASE = f"{base}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"{base.replace('http', 'ws')}/gateway")
    sys.exit(main())
