"""`dreamcord run` as an operator runs it, in a process of its own against the fake Discord: a refused
token, and a stop signal in the middle of a job (a restart or an update): the job is posted exactly
once, after it finished or after the next start."""

from __future__ import annotations

from pathlib import Path

import pytest

from generation.config import ModelConfig
from tests.e2e.processes import (
    Dreamcord,
    healthcheck,
    healthy_soon,
    imagine_and_wait_until_running,
    result_buttons,
    write_config,
)
from tests.fakediscord.server import FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="module")
BAD_TOKEN_LINE = (
    "dreamcord: Discord refused the token in DISCORD_TOKEN: copy it again from the developer "
    "portal (your application → Bot → Reset Token)"
)


async def test_a_refused_token_is_one_line_and_exit_code_2(
    bare_fake: FakeDiscord, tiny_config: ModelConfig, tmp_path: Path
) -> None:
    dreamcord = await Dreamcord.start(bare_fake, write_config(tmp_path, tiny_config, 5), token="wrong")
    assert await dreamcord.exit_code() == 2
    lines = dreamcord.output.strip().splitlines()
    assert lines[-1] == BAD_TOKEN_LINE
    assert not [line for line in lines if "Traceback" in line or " WARNING " in line or " ERROR " in line]


async def test_sigterm_mid_job_lets_it_finish_and_posts_it_once(
    bare_fake: FakeDiscord, tiny_config: ModelConfig, tmp_path: Path
) -> None:
    config = write_config(tmp_path, tiny_config, grace_s=120)
    dreamcord = await Dreamcord.start(bare_fake, config)
    await dreamcord.online(bare_fake)
    assert await healthy_soon(config) == (0, "healthy")
    await imagine_and_wait_until_running(bare_fake, bare_fake.add_user("alice"))

    assert await dreamcord.stop() == 0, dreamcord.output
    assert "SIGTERM: stopping" in dreamcord.output
    assert len(result_buttons(bare_fake)) == 1  # finished within the grace, and posted before the exit
    code, line = await healthcheck(config)
    assert code == 1 and line.startswith("unhealthy: nothing answers at http://127.0.0.1:")


async def test_sigterm_past_the_grace_resumes_the_job_on_the_next_start(
    bare_fake: FakeDiscord, tiny_config: ModelConfig, tmp_path: Path
) -> None:
    config = write_config(tmp_path, tiny_config, grace_s=0)
    first = await Dreamcord.start(bare_fake, config)
    await first.online(bare_fake)
    interaction = await imagine_and_wait_until_running(bare_fake, bare_fake.add_user("bob"))

    assert await first.stop() == 0, first.output
    assert "resume on the next start" in first.output
    assert result_buttons(bare_fake) == []
    own_message = bare_fake.message(interaction.original_id)
    assert own_message is not None and "paused: the bot is restarting" in own_message["content"]

    second = await Dreamcord.start(bare_fake, config)
    await second.online(bare_fake)
    await bare_fake.wait_until(lambda: result_buttons(bare_fake), 120)
    assert await second.stop() == 0, second.output
    ((message_id, _job),) = result_buttons(bare_fake)  # exactly once
    assert bare_fake.messages[message_id]["channel_id"] == str(interaction.channel_id)
