"""Pictures the safety checker flags are never uploaded outside age-restricted channels (#9).

This module's model has a tiny safety checker that flags every picture (generation.models.tiny)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation.config import ModelConfig
from generation.models.tiny import save_tiny_model
from tests.e2e.conftest import Stack
from tests.e2e.helpers import custom_ids, ephemeral_reply, image_of
from tests.e2e.test_imagine import _imagine

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def e2e_config(tmp_path_factory: pytest.TempPathFactory, tiny_config: ModelConfig) -> ModelConfig:
    folder = save_tiny_model(tmp_path_factory.mktemp("models") / "flagging", safety="flag-all")
    return replace(tiny_config, source=str(folder), safety_checker=True)


def is_placeholder(tile: Image.Image) -> bool:
    """The grey "hidden" tile: mostly (96, 96, 96), a few light pixels of text."""
    pixels = np.asarray(tile.convert("RGB")).reshape(-1, 3)
    return bool((pixels == 96).all(axis=1).mean() > 0.8)


async def test_flagged_pictures_are_replaced_by_a_notice_and_u_refuses_them(stack: Stack) -> None:
    fake = stack.fake
    alice = fake.add_user("alice")
    message = await _imagine(stack, alice, "a cat --seed 1 --steps 2")
    grid = image_of(fake, message["attachments"][0])
    tiles = [grid.crop((x, y, x + 64, y + 64)) for y in (0, 64) for x in (0, 64)]
    assert all(is_placeholder(tile) for tile in tiles)  # no generated pixel was uploaded
    assert "4 of 4 hidden by the safety filter" in message["content"]
    job_id = int(custom_ids(message)[0].split(":")[2])
    assert all(image.nsfw for image in await stack.jobs.images_of(job_id))  # recorded, for later channels
    pressed = await fake.press(alice, int(message["id"]), custom_ids(message)[0])
    assert "hidden by the safety filter" in await ephemeral_reply(stack, pressed)


async def test_an_age_restricted_channel_shows_them(stack: Stack, e2e_data_dir: Path) -> None:
    fake = stack.fake
    fake.channel_nsfw = True
    await stack.restart_bot()  # the guild (and its channel flags) arrive on connect
    bob = fake.add_user("bob")
    message = await _imagine(stack, bob, "a cat --seed 1 --steps 2")
    tile = image_of(fake, message["attachments"][0]).crop((0, 0, 64, 64))
    assert not is_placeholder(tile) and np.asarray(tile).std() > 10  # the real picture, not blacked out
    assert "hidden" not in message["content"]
