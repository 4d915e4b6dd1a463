"""Image prompts end to end: /blend of 2 and of 5 pictures, /imagine with a picture (--iw 0 gives the
pixels of the same prompt without it), and /blend's refusals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation.config import IpAdapterConfig, ModelConfig
from generation.models.loading import load_model
from generation.models.tiny import TINY_IP_ADAPTER_FILE, save_tiny_ip_adapter
from generation.specs import spec_from_json
from storage.models import Job
from tests.e2e.conftest import Stack
from tests.e2e.helpers import count, ephemeral_reply, finished, image_of, png
from tests.e2e.test_permissions import job_of

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _picture(name: str, colour: tuple[int, int, int]) -> tuple[str, bytes, str]:
    image = Image.new("RGB", (64, 64), (240, 240, 240))
    image.paste(colour, (16, 16, 48, 48))
    return (name, png(image), "image/png")


PICTURES = [_picture(f"p{i}.png", colour) for i, colour in enumerate(
    [(220, 20, 20), (20, 20, 220), (20, 200, 20), (200, 200, 20), (120, 20, 160)]
)]  # fmt: skip


@pytest.fixture(scope="module")
def e2e_config(e2e_config: ModelConfig, tmp_path_factory: pytest.TempPathFactory) -> ModelConfig:
    unet = load_model(e2e_config, device="cpu").pipeline.unet
    folder: Path = save_tiny_ip_adapter(tmp_path_factory.mktemp("ip-adapter"), unet)
    return replace(
        e2e_config, ip_adapter=IpAdapterConfig(source=str(folder), weight_name=TINY_IP_ADAPTER_FILE)
    )


async def _spec(stack: Stack, message: dict[str, object]) -> object:
    job = await stack.jobs.get_job(job_of(message))
    assert job is not None
    return spec_from_json(job.spec_json)


@pytest.mark.parametrize("pictures", [2, 5])
async def test_blend_mixes_two_to_five_pictures_into_a_grid(stack: Stack, pictures: int) -> None:
    fake = stack.fake
    ann = fake.add_user("ann")
    attachments = {f"image{i + 1}": PICTURES[i] for i in range(pictures)}
    grid = await finished(
        stack, await fake.slash(ann, "blend", {"prompt": "--seed 4 --steps 2"}, attachments=attachments)
    )
    assert image_of(fake, grid["attachments"][0]).size == (128, 128)
    assert f"blend of {pictures} pictures" in grid["content"]
    spec = await _spec(stack, grid)
    assert spec.prompt == "" and spec.image_prompt is not None  # type: ignore[attr-defined]
    assert len(spec.image_prompt.images) == pictures  # type: ignore[attr-defined]


async def test_an_image_prompt_at_iw_0_is_the_prompt_alone(stack: Stack) -> None:
    fake = stack.fake
    bo = fake.add_user("bo")
    alone = await finished(
        stack, await fake.slash(bo, "imagine", {"prompt": "a photo of a cat --seed 7 --steps 2"})
    )
    zero = await finished(stack, await fake.slash(
        bo, "imagine", {"prompt": "a photo of a cat --seed 7 --steps 2 --iw 0"}, attachments={"image": PICTURES[0]}
    ))  # fmt: skip
    steered = await finished(stack, await fake.slash(
        bo, "imagine", {"prompt": "a photo of a cat --seed 7 --steps 2"}, attachments={"image": PICTURES[0]}
    ))  # fmt: skip
    pixels = [np.asarray(image_of(fake, m["attachments"][0]), dtype=np.int16) for m in (alone, zero, steered)]
    assert np.array_equal(pixels[0], pixels[1])
    assert np.abs(pixels[0] - pixels[2]).mean() > 1.0
    spec = await _spec(stack, zero)
    assert spec.image_prompt.weight == 0.0 and "image prompt of 1 picture" in zero["content"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "attachments", "expected"),
    [
        ({}, {"image1": PICTURES[0]}, "mixes 2 to 5 pictures"),
        ({"prompt": "--iw 9"}, {"image1": PICTURES[0], "image2": PICTURES[1]}, "--iw got '9'"),
        ({"prompt": "{a, b, c, d, e}"}, {"image1": PICTURES[0], "image2": PICTURES[1]}, "at most 4 jobs"),
    ],
    ids=["one-picture", "bad-iw", "too-many-jobs"],
)
async def test_blend_refuses_bad_input_before_anything_is_queued(
    stack: Stack, options: dict[str, object], attachments: dict[str, tuple[str, bytes, str]], expected: str
) -> None:
    cy = stack.fake.add_user("cy")
    reply = await ephemeral_reply(
        stack, await stack.fake.slash(cy, "blend", options, attachments=attachments)
    )
    assert expected in reply
    assert await count(stack, Job) == 0
