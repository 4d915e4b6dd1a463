"""`dreamcord doctor` as an operator runs it, against the fake Discord: every check on one line, the
invite URL with the bot's own id, and exit 1 for each kind of problem."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from safetensors import safe_open

from bot.doctor import DeviceMemory, model_check
from bot.settings import Settings
from generation.config import ModelConfig
from storage.db import upgrade
from tests.e2e.processes import Dreamcord, write_config
from tests.fakediscord.server import FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _parameters(folder: Path) -> int:
    total = 0
    for file in folder.glob("*/*.safetensors"):
        with safe_open(str(file), framework="pt") as weights:
            total += sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())  # noqa: SIM118
    return total


async def test_a_healthy_deployment_passes_and_shows_the_invite_url(
    bare_fake: FakeDiscord, tiny_config: ModelConfig, tmp_path: Path
) -> None:
    config = write_config(tmp_path, tiny_config, grace_s=5)
    (tmp_path / "data").mkdir()
    upgrade(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'dreamcord.db'}")
    doctor = await Dreamcord.start(bare_fake, config, command="doctor")
    assert await doctor.exit_code() == 0, doctor.output
    lines = doctor.output.splitlines()
    parameters = _parameters(Path(tiny_config.source))
    (model,) = [line for line in lines if line.startswith("ok   model    tiny:")]
    assert f"local, SD 1.x/2.x, {parameters / 1e6:.1f} M parameters" in model
    assert any(line.startswith("ok   database") and line.endswith("(current)") for line in lines)
    assert any(line.startswith("ok   token    logs in as dreamcord") for line in lines)
    (invite,) = [line for line in lines if line.startswith("note invite")]
    assert f"client_id={bare_fake.app_id}" in invite and "permissions=274878024704" in invite
    assert lines[-1] == "everything looks right"


async def test_a_wrong_token_and_a_missing_model_each_fail(
    bare_fake: FakeDiscord, tiny_config: ModelConfig, tmp_path: Path
) -> None:
    config = write_config(tmp_path, tiny_config, grace_s=5)
    config.write_text(config.read_text() + f'\n[models.gone]\nsource = "{tmp_path / "nowhere"}"\n')
    doctor = await Dreamcord.start(bare_fake, config, token="wrong", command="doctor")
    assert await doctor.exit_code() == 1
    lines = doctor.output.splitlines()
    assert f"FAIL model    gone: {tmp_path / 'nowhere'} does not exist" in lines
    assert any(line.startswith("FAIL token    Discord refused the token") for line in lines)
    assert lines[-1] == "2 problem(s) found"


async def test_a_model_larger_than_the_device_fails_unless_offloaded(tiny_config: ModelConfig) -> None:
    settings = Settings(models={"tiny": tiny_config}, default_model="tiny")
    small = DeviceMemory("cuda:0 (a small card)", 1024, "float16")
    check = model_check(tiny_config, settings, small)
    assert check.ok is False and "MiB in float16; cuda:0 (a small card) has 0 MiB: too large" in check.line
    offloaded = ModelConfig(**{**tiny_config.__dict__, "offload": "model"})
    assert model_check(offloaded, settings, small).ok is True
