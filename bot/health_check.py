"""`dreamcord health`: ask the running bot's /healthz (what the Dockerfile's HEALTHCHECK runs). One
line, exit 0 when healthy, 1 when not or when nothing answers. Standard library only: it runs every
few seconds and must start fast."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from bot.settings import Settings, SettingsError

TIMEOUT_S = 5.0
ANY_ADDRESS = {"0.0.0.0", "::", ""}


def health_url(settings: Settings) -> str:
    if settings.health_port is None:
        raise SettingsError(
            "health_port is not set, so the bot serves no /healthz (set DREAMCORD_HEALTH_PORT)"
        )
    host = "127.0.0.1" if settings.health_host in ANY_ADDRESS else settings.health_host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.health_port}/healthz"


def check_health(settings: Settings) -> int:
    url = health_url(settings)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # our own http URL
            response.read()
    except urllib.error.HTTPError as error:
        try:
            problems = json.loads(error.read()).get("problems", [])
        except ValueError:
            problems = []
        print(f"unhealthy: {'; '.join(problems) or f'HTTP {error.code}'}")
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"unhealthy: nothing answers at {url} ({getattr(error, 'reason', error)})")
        return 1
    print("healthy")
    return 0
