"""`dreamcord doctor`: check a deployment before (or while) it runs, one line per check: the config,
each model (found, family, weights against the device's memory), the database's migrations, the
token (who the bot is) and the invite URL. Exit 0 when nothing is wrong, 1 otherwise."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from bot.settings import Settings, config_file_read
from generation.bundled import BUNDLED_MODEL_NAME
from generation.config import ModelConfig
from generation.errors import DreamcordError

GiB = 1024**3


@dataclass(frozen=True)
class Check:
    ok: bool | None  # None: worth knowing, not wrong
    topic: str
    line: str

    def __str__(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "note"}[self.ok]
        return f"{mark} {self.topic:<9}{self.line}"


def run_doctor(settings: Settings, config_file: Path | None) -> int:
    checks = [config_check(settings, config_file)]
    device = device_memory(settings.device)
    checks += [model_check(config, settings, device) for _, config in sorted(settings.models.items())]
    checks.append(database_check(settings))
    checks += asyncio.run(token_checks(settings.discord_token))
    if settings.default_model == BUNDLED_MODEL_NAME:
        demo = "the default model is the bundled demo (shapes and colours only): set default_model"
        checks.append(Check(None, "model", demo))
    for check in checks:
        print(check)
    failed = sum(1 for check in checks if check.ok is False)
    print(f"{failed} problem(s) found" if failed else "everything looks right")
    return 1 if failed else 0


def config_check(settings: Settings, config_file: Path | None) -> Check:
    source = config_file_read(config_file)  # the same rule load_settings followed
    where = str(source) if source else "no config file (defaults and DREAMCORD_* variables)"
    return Check(
        True,
        "config",
        f"{where}: {len(settings.models)} model(s), default {settings.default_model!r}, "
        f"data in {settings.data_dir.resolve()}",
    )


@dataclass(frozen=True)
class DeviceMemory:
    name: str
    total: int | None  # bytes; None: the device is not there
    runs_in: str  # the dtype "auto" means there


def device_memory(device: str) -> DeviceMemory:
    import torch

    from generation.models.loading import choose_device

    chosen = choose_device(device)
    if chosen.type == "cuda":
        index = chosen.index or 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            return DeviceMemory(str(chosen), None, "float16")
        properties = torch.cuda.get_device_properties(index)
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return DeviceMemory(f"{chosen} ({properties.name})", properties.total_memory, dtype)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return DeviceMemory(str(chosen), ram, "float32")


def model_check(config: ModelConfig, settings: Settings, device: DeviceMemory) -> Check:
    from bot.model_sources import model_availability
    from generation.models.checkpoint_facts import family_of
    from generation.models.weight_size import parameter_count, weight_bytes

    for source in (config.source, config.base):
        where = model_availability(source) if source else "local"
        if where == "missing":
            return Check(False, "model", f"{config.name}: {source} does not exist")
        if where.startswith("hub, not downloaded"):
            return Check(
                None, "model", f"{config.name}: {source} is not downloaded yet: run `dreamcord pull`"
            )
    where = model_availability(config.source)
    try:
        family = family_of(config).label
        parameters = parameter_count(config.source, config.base)
    except DreamcordError as error:
        return Check(False, "model", f"{config.name}: {error}")
    if device.total is None:
        return Check(False, "model", f"{config.name}: device {device.name} is not available on this machine")
    if parameters is None:
        return Check(True, "model", f"{config.name}: {where}, {family}")
    dtype = (
        config.dtype
        if config.dtype != "auto"
        else settings.dtype
        if settings.dtype != "auto"
        else device.runs_in
    )
    needed = weight_bytes(parameters, dtype)
    summary = (
        f"{config.name}: {where}, {family}, {_count(parameters)} parameters = "
        f"{_size(needed)} in {dtype}; {device.name} has {_size(device.total)}"
    )
    if needed > device.total and config.offload == "none":
        return Check(False, "model", f'{summary}: too large (try offload = "model")')
    return Check(True, "model", summary)


def _count(parameters: int) -> str:
    return f"{parameters / 1e9:.2f} B" if parameters >= 10**9 else f"{parameters / 1e6:.1f} M"


def _size(size: int) -> str:
    return f"{size / GiB:.1f} GiB" if size >= GiB else f"{size / 2**20:.0f} MiB"


def database_check(settings: Settings) -> Check:
    from alembic.script import ScriptDirectory

    from storage.db import alembic_config, current_revision

    shown = settings.db_url.split("@")[-1]  # never a password
    if settings.database_url is None and not (settings.data_dir / "dreamcord.db").is_file():
        return Check(None, "database", f"{shown} does not exist yet: `dreamcord run` creates it")
    try:
        current = current_revision(settings.db_url)
    except Exception as error:  # any failure to connect is what this check reports
        reason = str(error).splitlines()[0]
        return Check(False, "database", f"{shown}: cannot connect ({type(error).__name__}: {reason})")
    head = ScriptDirectory.from_config(alembic_config(settings.db_url)).get_current_head()
    if current == head:
        return Check(True, "database", f"{shown} at revision {current} (current)")
    return Check(
        None,
        "database",
        f"{shown} at revision {current or 'none'}; {head} is newest (`dreamcord run` upgrades it)",
    )


async def token_checks(token: str | None) -> list[Check]:
    import discord

    from bot.startup import BAD_TOKEN, invite_url

    if not token:
        return [
            Check(False, "token", "DISCORD_TOKEN is not set (the bot's token, from the environment only)")
        ]
    client = discord.Client(intents=discord.Intents.none())
    try:
        async with client:
            await client.login(token)
    except discord.LoginFailure:
        return [Check(False, "token", BAD_TOKEN)]
    except (OSError, discord.HTTPException) as error:
        return [Check(False, "token", f"cannot reach Discord to check it ({error})")]
    assert client.application_id is not None
    return [
        Check(True, "token", f"logs in as {client.user} (application {client.application_id})"),
        Check(None, "invite", invite_url(client.application_id)),
    ]
