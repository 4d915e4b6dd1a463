"""The README's "Run it in your server" stays true: every `dreamcord` command it shows runs here, in that
order, as the real command against the fake Discord (with the bundled model, as a newcomer starts), and
tests/test_deploy.py checks the files its Docker and systemd steps name."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.e2e.processes import ROOT, Dreamcord, free_port, healthy_soon
from tests.fakediscord.server import FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="module")
README = ROOT / "README.md"


def section() -> str:
    """The README's "Run it in your server" section."""
    text = README.read_text(encoding="utf-8")
    start = text.index("## Run it in your server")
    return text[start : text.index("\n## ", start + 1)]


def shown_commands() -> list[list[str]]:
    """The `dreamcord …` lines of the checked block, without their comments."""
    block = section().split("<!-- checked-commands -->", 1)[1]
    code = re.search(r"```bash\n(.*?)```", block, re.DOTALL)
    assert code is not None, "the checked block has no bash code"
    lines = [line.split("#", 1)[0].strip() for line in code.group(1).splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("dreamcord ")]


async def test_every_command_it_shows_runs(bare_fake: FakeDiscord, tmp_path: Path) -> None:
    config = tmp_path / "dreamcord.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\ndevice = "cpu"\ntraining_devices = []\nhealth_port = {free_port()}\n',
        encoding="utf-8",
    )
    commands = shown_commands()
    assert [c[0] for c in commands] == ["--version", "doctor", "pull", "run", "health"]
    running: Dreamcord | None = None
    for words in commands:
        (command,) = words  # none of them takes arguments in the README
        started = await Dreamcord.start(bare_fake, config, command=command)
        if command == "run":
            await started.online(bare_fake)
            running = started
            continue
        if command == "health":
            assert await healthy_soon(config) == (0, "healthy")
            await started.exit_code()
            continue
        assert await started.exit_code() == 0, f"dreamcord {command}:\n{started.output}"
        if command == "doctor":
            assert "invite   https://discord.com/oauth2/authorize?client_id=" in started.output
    assert running is not None
    assert await running.stop() == 0, running.output
    # As step 4 says.
    assert "the default model is the bundled demo model (shapes and colours only)" in running.output
