"""/vary, /upscale and /outpaint on an uploaded picture or an earlier result, end to end."""

from __future__ import annotations

import pytest
from PIL import Image

from generation.specs import spec_from_json
from storage.models import Job
from tests.e2e.conftest import Stack
from tests.e2e.helpers import count, custom_ids, ephemeral_reply, finished, image_of, png
from tests.e2e.test_imagine import _imagine

pytestmark = pytest.mark.asyncio(loop_scope="module")

PICTURE = ("circle.png", png(Image.new("RGB", (96, 64), (200, 30, 30))), "image/png")


async def _job_of(stack: Stack, message: dict[str, object]) -> int:
    return int(custom_ids(message)[0].split(":")[2])  # type: ignore[arg-type]


async def test_upscale_a_picture_of_an_earlier_result(stack: Stack) -> None:
    alice = stack.fake.add_user("alice")
    grid = await _imagine(stack, alice, "a red circle --seed 5 --steps 3")
    grid_job = await _job_of(stack, grid)
    reply = await finished(
        stack, await stack.fake.slash(alice, "upscale", {"job": grid_job, "index": 2, "factor": 4})
    )
    assert image_of(stack.fake, reply["attachments"][0]).size == (256, 256)
    job = await stack.jobs.get_job(await _job_of(stack, reply))
    second = (await stack.jobs.images_of(grid_job))[1]
    assert job is not None and job.parent_job_id == grid_job
    spec = spec_from_json(job.spec_json)
    assert spec.kind == "upscale" and spec.source == second.file_hash and spec.prompt == "a red circle"


async def test_outpaint_an_uploaded_picture_to_a_new_aspect(stack: Stack) -> None:
    bob = stack.fake.add_user("bob")
    interaction = await stack.fake.slash(
        bob,
        "outpaint",
        {"operation": "aspect", "aspect": "2:1", "prompt": "a red wall --steps 3"},
        attachments={"image": PICTURE},
    )
    reply = await finished(stack, interaction)
    assert image_of(stack.fake, reply["attachments"][0]).size == (256, 128)  # four 128x64 pictures
    job = await stack.jobs.get_job(await _job_of(stack, reply))
    assert job is not None and job.owner_id == bob
    spec = spec_from_json(job.spec_json)
    assert (spec.width, spec.height, spec.placement.left, spec.placement.width) == (128, 64, 16, 96)


async def test_vary_a_region_of_an_uploaded_picture_by_mask(stack: Stack) -> None:
    carol = stack.fake.add_user("carol")
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (0, 0, 48, 64))
    interaction = await stack.fake.slash(
        carol,
        "vary",
        {"prompt": "a blue wall --steps 3"},
        attachments={"image": PICTURE, "mask": ("mask.png", png(mask), "image/png")},
    )
    reply = await finished(stack, interaction)
    assert "region" in reply["content"]
    pictures = image_of(stack.fake, reply["attachments"][0])
    assert pictures.size == (192, 128)
    right_half = pictures.crop((72, 8, 96, 56))  # far from the mask's edge in picture 1
    assert right_half.getcolors() == [(24 * 48, (200, 30, 30))]  # kept exactly


@pytest.mark.parametrize(
    ("command", "options", "upload", "expected"),
    [
        ("vary", {}, PICTURE, "describe the uploaded picture"),
        ("vary", {"job": 999, "prompt": "x"}, PICTURE, "either an `image`"),
        ("vary", {"job": 999}, None, "job 999 has no result you can see here"),
        ("vary", {"region": "the left half", "prompt": "x"}, PICTURE, "four percentages"),
        (
            "upscale",
            {"prompt": "x"},
            ("notes.png", b"text, renamed", "image/png"),
            "notes.png is not an image",
        ),
        (
            "outpaint",
            {"operation": "square", "prompt": "x"},
            ("sq.png", png(Image.new("RGB", (64, 64))), "image/png"),
            "already square",
        ),
        ("outpaint", {"operation": "aspect", "aspect": "wide", "prompt": "x"}, PICTURE, "--ar got 'wide'"),
        ("describe", {}, PICTURE, "model 'tiny' has no describer configured"),
        ("describe", {}, None, "either an `image`"),
        ("describe", {"model": "nope"}, PICTURE, "unknown model 'nope'"),
        ("imagine", {"prompt": "a cat"}, PICTURE, "has no IP-Adapter configured"),
        ("imagine", {"prompt": "a cat --iw 1"}, None, "--iw needs a picture"),
    ],
    ids=[
        "no-prompt",
        "image-and-job",
        "unknown-job",
        "bad-region",
        "not-an-image",
        "already-square",
        "bad-aspect",
        "describe-no-describer",
        "describe-nothing",
        "describe-unknown-model",
        "image-prompt-without-adapter",
        "iw-without-picture",
    ],
)
async def test_bad_input_gets_an_ephemeral_error_and_queues_nothing(
    stack: Stack,
    command: str,
    options: dict[str, object],
    upload: tuple[str, bytes, str] | None,
    expected: str,
) -> None:
    erin = stack.fake.add_user("erin")
    attachments = {"image": upload} if upload else None
    interaction = await stack.fake.slash(erin, command, options, attachments=attachments)
    assert expected in await ephemeral_reply(stack, interaction)
    assert await count(stack, Job) == 0


async def test_imagine_with_a_control_picture_uses_the_controlnet(stack: Stack) -> None:
    fake = stack.fake
    gina = fake.add_user("gina")
    edges = Image.new("RGB", (64, 64), (0, 0, 0))
    edges.paste((255, 255, 255), (10, 10, 50, 50))
    options = {"prompt": "a box --seed 3 --steps 3", "control_scale": 0.8}
    controlled = await finished(
        stack,
        await fake.slash(
            gina, "imagine", options, attachments={"control_image": ("box.png", png(edges), "image/png")}
        ),
    )
    assert "canny control, scale 0.8" in controlled["content"]
    job = await stack.jobs.get_job(await _job_of(stack, controlled))
    assert job is not None
    spec = spec_from_json(job.spec_json)
    assert spec.control is not None and stack.jobs.files.exists(spec.control.image)
    plain = await _imagine(stack, gina, "a box --seed 3 --steps 3")
    assert (
        image_of(fake, plain["attachments"][0]).tobytes()
        != image_of(fake, controlled["attachments"][0]).tobytes()
    )
    refused = await fake.slash(
        gina,
        "imagine",
        {"prompt": "a box", "control_mode": "pose"},
        attachments={"control_image": ("box.png", png(edges), "image/png")},
    )
    assert "no pose ControlNet configured (configured: canny)" in await ephemeral_reply(stack, refused)
