"""Running the real `dreamcord` command in processes of their own against the fake Discord (through
tests/e2e/dreamcord_on_fake.py), as an operator runs it. Every process started here is killed, with its
workers, after the test that started it, however the test ended."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from generation.config import ModelConfig
from tests.fakediscord.server import FakeDiscord

LAUNCHER = Path(__file__).with_name("dreamcord_on_fake.py")
ROOT = Path(__file__).parents[2]
STARTED: list[asyncio.subprocess.Process] = []  # killed by tests/e2e/conftest.py after each test


def kill_leftovers() -> None:
    """Kill every process a test started that is still running (a failed test leaves them)."""
    while STARTED:
        process = STARTED.pop()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # its worker processes too


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(folder: Path, model: ModelConfig, grace_s: float) -> Path:
    config = folder / "dreamcord.toml"
    config.write_text(
        f'default_model = "tiny"\ndata_dir = "{folder / "data"}"\ndevice = "cpu"\n'
        f"training_devices = []\nshutdown_grace_s = {grace_s}\nhealth_port = {free_port()}\n\n"
        f'[models.tiny]\nsource = "{model.source}"\nscheduler = "euler_a"\nsteps = 4\n',
        encoding="utf-8",
    )
    return config


@dataclass
class Dreamcord:
    """One `dreamcord run` process; its output goes to a file (a pipe nobody reads would fill up and
    block it)."""

    process: asyncio.subprocess.Process
    log: Path

    @classmethod
    async def start(
        cls,
        fake: FakeDiscord,
        config: Path,
        token: str = "fake-token",
        command: str = "run",
        *,
        wrapper: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Dreamcord:
        """`dreamcord COMMAND`, run through `wrapper` (a command that runs its arguments) if given."""
        env = {
            **os.environ,
            "DREAMCORD_FAKE_DISCORD": fake.base,
            "DISCORD_TOKEN": token,
            "PYTHONPATH": str(ROOT),
            "HF_HUB_OFFLINE": "1",
            **(env or {}),
        }
        log = config.with_name(f"{command}-{fake.sessions_started}-{token}.log")
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                *wrapper, sys.executable, str(LAUNCHER), "--config", str(config), command,
                env=env, stdout=output, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        STARTED.append(process)
        return cls(process, log)

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def exit_code(self, timeout: float = 120) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def online(self, fake: FakeDiscord) -> None:
        """Wait until its gateway session is up (it connects once its workers are ready)."""
        before = fake.sessions_started
        waiting = asyncio.create_task(fake.wait_until(lambda: fake.sessions_started > before, 120))
        exited = asyncio.create_task(self.process.wait())
        await asyncio.wait((waiting, exited), return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if not waiting.done():
            waiting.cancel()
            pytest.fail(f"dreamcord run exited ({self.process.returncode}) before connecting:\n{self.output}")
        waiting.result()  # raises if it timed out

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await self.exit_code()


def result_buttons(fake: FakeDiscord) -> list[tuple[int, str]]:
    """(message id, job id) of every message with a U1 button: a posted result."""
    return [
        (int(m["id"]), c["custom_id"].split(":")[2])
        for m in fake.messages.values()
        for row in m["components"]
        for c in row["components"]
        if c.get("custom_id", "").startswith("dc:u:") and c["custom_id"].endswith(":0")
    ]


async def imagine_and_wait_until_running(fake: FakeDiscord, user: int) -> Any:
    interaction = await fake.slash(user, "imagine", {"prompt": "a red circle --seed 3 --steps 150"})
    await fake.wait_until(
        lambda: "— st" in (fake.message(interaction.original_id) or {}).get("content", ""), 60
    )  # "— starting" or "— step n/150": a worker is running it
    return interaction


async def healthcheck(config: Path) -> tuple[int, str]:
    """What the Dockerfile's HEALTHCHECK runs: `dreamcord health`, in a process of its own."""
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "--config", str(config), "health",
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(check.communicate(), 60)
    return await check.wait(), output.decode().strip()


async def healthy_soon(config: Path, timeout: float = 60) -> tuple[int, str]:
    """The healthcheck's answer once it is "healthy" (the gateway session becomes ready a moment after
    it starts), or its last answer at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = await healthcheck(config)
        if answer[0] == 0 or asyncio.get_running_loop().time() > deadline:
            return answer
        await asyncio.sleep(0.2)
