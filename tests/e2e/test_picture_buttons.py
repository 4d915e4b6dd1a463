"""The buttons under a single picture (after U, or an upscale), end to end: vary, region, upscale,
zoom out and pan, each a new job owned by whoever pressed, working after a restart."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from generation.models import checkpoint_facts
from generation.models.family_facts import SD1
from generation.specs import SUBTLE_STRENGTH, spec_from_json
from tests.e2e.conftest import Stack
from tests.e2e.helpers import custom_ids, ephemeral_reply, finished, image_of
from tests.e2e.test_imagine import _imagine
from tests.e2e.test_permissions import jobs_of, refused_quietly

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _single(stack: Stack, user: int, prompt: str, index: int = 1) -> dict[str, Any]:
    """/imagine, then U(index+1): the single picture's message."""
    grid = await _imagine(stack, user, prompt)
    press = await stack.fake.press(user, int(grid["id"]), custom_ids(grid)[index])
    return await finished(stack, press)


async def _press(stack: Stack, user: int, message: dict[str, Any], action: str) -> dict[str, Any]:
    custom_id = next(c for c in custom_ids(message) if c.startswith(f"dc:{action}:"))
    return await finished(stack, await stack.fake.press(user, int(message["id"]), custom_id))


async def _spec_of(stack: Stack, message: dict[str, Any]) -> Any:
    job = await stack.jobs.get_job(int(custom_ids(message)[0].split(":")[2]))
    assert job is not None
    return job, spec_from_json(job.spec_json)


async def test_a_single_picture_has_vary_upscale_zoom_and_pan_buttons(stack: Stack) -> None:
    alice = stack.fake.add_user("alice")
    single = await _single(stack, alice, "a red circle --seed 5 --steps 3")
    job_id = int(custom_ids(single)[0].split(":")[2])
    actions = [custom_id.split(":")[1] for custom_id in custom_ids(single)]
    assert actions == [
        "vs",
        "vt",
        "vr",
        "u2",
        "u4",
        "z2",
        "z15",
        "pl",
        "pr",
        "pu",
        "pd",
    ]  # square: no Make Square
    assert all(custom_id.endswith(f":{job_id}:1") for custom_id in custom_ids(single))
    assert [len(row["components"]) for row in single["components"]] == [3, 2, 2, 4]


async def test_upscale_2x_gives_a_bigger_picture_with_its_own_buttons(stack: Stack) -> None:
    bob = stack.fake.add_user("bob")
    single = await _single(stack, bob, "a blue square --seed 9 --steps 3")
    upscaled = await _press(stack, bob, single, "u2")
    assert image_of(stack.fake, upscaled["attachments"][0]).size == (128, 128)
    assert "upscaled 2x (subtle)" in upscaled["content"]
    assert "u4" in {custom_id.split(":")[1] for custom_id in custom_ids(upscaled)}
    job, spec = await _spec_of(stack, upscaled)
    assert spec.kind == "upscale" and job.parent_job_id is not None


async def test_zoom_out_and_pan_give_grids_of_the_right_size(stack: Stack) -> None:
    carol = stack.fake.add_user("carol")
    single = await _single(stack, carol, "a green star --seed 1 --steps 3")
    zoomed = await _press(stack, carol, single, "z2")
    assert image_of(stack.fake, zoomed["attachments"][0]).size == (128, 128)  # 2x2 grid of 64x64
    assert "zoomed out to 64x64" in zoomed["content"]
    assert len(custom_ids(zoomed)) == 10  # a grid again: U1-U4, reroll, V1-V4, Delete
    panned = await _press(stack, carol, single, "pl")
    assert image_of(stack.fake, panned["attachments"][0]).size == (192, 128)  # 96x64 pictures, 3:2
    _, spec = await _spec_of(stack, panned)
    assert spec.operation == "pan-left" and spec.placement.left == 32


async def _region_form(stack: Stack, user: int, prompt: str) -> tuple[Any, list[str]]:
    """Press Vary (Region) under a fresh single picture: the opened form and its fields' ids."""
    single = await _single(stack, user, prompt)
    custom_id = next(c for c in custom_ids(single) if c.startswith("dc:vr:"))
    opened = await stack.fake.press(user, int(single["id"]), custom_id)
    await stack.fake.wait_until(lambda: opened.modal is not None)
    fields = [row["components"][0]["custom_id"] for row in opened.modal["components"]]  # type: ignore[index]
    return opened, fields


async def test_vary_region_opens_a_form_and_repaints_only_the_box(stack: Stack) -> None:
    dave = stack.fake.add_user("dave")
    opened, fields = await _region_form(stack, dave, "a yellow ring --seed 20 --steps 3")
    assert len(fields) == 2  # the box and the prompt
    submitted = await stack.fake.submit_modal(dave, opened, {fields[0]: "0, 0, 50%, 100%"})
    varied = await finished(stack, submitted)
    assert "variations (strength 1, region)" in varied["content"]
    _, spec = await _spec_of(stack, varied)
    assert json.loads(spec.box.model_dump_json()) == {"left": 0.0, "top": 0.0, "right": 0.5, "bottom": 1.0}


async def test_a_bad_region_gets_an_ephemeral_error(stack: Stack) -> None:
    erin = stack.fake.add_user("erin")
    opened, fields = await _region_form(stack, erin, "a red circle --seed 2 --steps 3")
    submitted = await stack.fake.submit_modal(erin, opened, {fields[0]: "left half"})
    assert "four percentages" in await ephemeral_reply(stack, submitted)


async def test_picture_buttons_work_after_a_restart_for_whoever_presses(stack: Stack) -> None:
    fake = stack.fake
    frank = fake.add_user("frank")
    single = await _single(stack, frank, "a blue circle --seed 3 --steps 3")
    await stack.restart_bot()
    gina = fake.add_user("gina")
    varied = await _press(stack, gina, single, "vs")
    assert f"<@{gina}>" in varied["content"] and "variations (subtle)" in varied["content"]
    job, spec = await _spec_of(stack, varied)
    assert job.owner_id == gina and spec.strength == 0.35


async def test_show_brings_a_result_back_and_one_picture_with_its_parameters(stack: Stack) -> None:
    fake = stack.fake
    hana = fake.add_user("hana")
    single = await _single(stack, hana, "a green circle --seed 30 --steps 3", index=2)
    grid_job = int(custom_ids(single)[0].split(":")[2])
    varied = await _press(stack, hana, single, "vt")
    vary_job = int(custom_ids(varied)[0].split(":")[2])

    again = await finished(stack, await fake.slash(hana, "show", {"job": grid_job}))
    assert custom_ids(again)[0] == f"dc:u:{grid_job}:0" and len(custom_ids(again)) == 10
    assert image_of(fake, again["attachments"][0]).size == (128, 128)

    one = await finished(stack, await fake.slash(hana, "show", {"job": vary_job, "index": 2}))
    assert "Picture #2 of job" in one["content"] and "Denoising strength: 0.7" in one["content"]
    assert f"Made from job {grid_job}: https://discord.com/channels/" in one["content"]
    assert custom_ids(one)[0] == f"dc:vs:{vary_job}:1"
    assert image_of(fake, one["attachments"][0]).size == (64, 64)
    missing = await fake.slash(hana, "show", {"job": 99999})
    assert "has no result you can see here" in await ephemeral_reply(stack, missing)


async def test_info_on_a_picture_gives_its_parameters(stack: Stack) -> None:
    fake = stack.fake
    ida = fake.add_user("ida")
    grid = await _imagine(stack, ida, "a yellow star --seed 77 --steps 3")
    grid_job = int(custom_ids(grid)[0].split(":")[2])
    assert await stack.job_message_id(grid_job)  # recorded with the upload's time, just after the post
    reply = await ephemeral_reply(stack, await fake.slash(ida, "info", {"job": grid_job, "index": 3}))
    assert "Picture #3 of job" in reply and "Seed: 79" in reply and "Steps: 3" in reply
    assert "Prompt: 3 tokens (of 75 per window)" in reply  # the worker's count, stored with the job
    time_line = next(line for line in reply.splitlines() if line.startswith("Time: "))
    for phase in (
        "queued",
        "model switch",
        "text encoding",
        "denoising",
        "decode",
        "picture encoding",
        "upload",
    ):
        assert f"{phase} " in time_line, time_line  # where the time went, for an operator

    long = await _imagine(
        stack, ida, "a (yellow:1.3) star::2 " + "on a plain background, " * 20 + "--steps 2"
    )
    long_job = int(custom_ids(long)[0].split(":")[2])
    reply = await ephemeral_reply(stack, await fake.slash(ida, "info", {"job": long_job}))
    assert "tokens, encoded in 2 windows of 75" in reply


async def test_what_the_models_family_cannot_do_has_no_button_and_is_refused_before_queueing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A family without outpainting and upscaling (as a real one may lack an operation): its pictures
    show no Zoom, pan, Make Square or Upscale buttons, and a forged press or the command is refused
    at submit with one line, nothing queued."""
    tiny = stack.settings.models["tiny"]
    lacking = replace(SD1, operations=SD1.operations - {"outpaint", "upscale"})
    monkeypatch.setitem(checkpoint_facts._FAMILIES_FOUND, tiny, lacking)
    dana = stack.fake.add_user("dana")
    single = await _single(stack, dana, "a red circle --seed 5 --steps 2 --ar 2:1")  # not square
    job_id = int(custom_ids(single)[0].split(":")[2])
    assert [custom_id.split(":")[1] for custom_id in custom_ids(single)] == ["vs", "vt", "vr"]
    before = await jobs_of(stack, dana)

    zoom = {"type": 2, "style": 2, "label": "Zoom Out 2x", "custom_id": f"dc:z2:{job_id}:1"}
    old = stack.fake.forge_message(stack.fake.main, [{"type": 1, "components": [zoom]}])  # as shown before
    forged = await stack.fake.press(dana, int(old["id"]), zoom["custom_id"])
    typed = await stack.fake.slash(dana, "outpaint", {"operation": "zoom", "job": job_id, "index": 1})
    upscale = await stack.fake.slash(dana, "upscale", {"job": job_id, "index": 1})
    for interaction, words in ((forged, "zoom, pan and make square"), (typed, "zoom, pan and make square"),
                               (upscale, "upscaling")):  # fmt: skip
        assert await refused_quietly(stack, interaction) == f"model 'tiny' (SD 1.x/2.x) cannot do {words} yet"
    assert await jobs_of(stack, dana) == before


async def test_remix_mode_lets_v_reroll_and_vary_edit_the_prompt_first(stack: Stack) -> None:
    fake = stack.fake
    rita = fake.add_user("rita")
    switched = await fake.slash(rita, "settings remix", {"on": True})
    assert "Remix mode is on" in await ephemeral_reply(stack, switched)
    grid = await _imagine(stack, rita, "a red circle --seed 2 --steps 2 --no blur")
    grid_job = int(custom_ids(grid)[0].split(":")[2])

    for custom_id, edited, kind in (
        (f"dc:v:{grid_job}:1", "a blue square --steps 2", "vary"),
        (f"dc:r:{grid_job}:0", "a green ring --steps 2", "imagine"),
    ):
        pressed = await fake.press(rita, int(grid["id"]), custom_id)
        await fake.wait_until(lambda p=pressed: p.modal is not None)
        assert pressed.modal is not None and "a red circle --no blur" in json.dumps(pressed.modal)
        remixed = await finished(stack, await fake.submit_modal(rita, pressed, {"prompt": edited}))
        job, spec = await _spec_of(stack, remixed)
        assert (spec.kind, spec.prompt, job.parent_job_id) == (kind, edited.split(" --")[0], grid_job)

    single = await finished(
        stack, await fake.press(rita, int(grid["id"]), custom_ids(grid)[0])
    )  # U1: no form
    pressed = await fake.press(rita, int(single["id"]), f"dc:vs:{grid_job}:0")
    await fake.wait_until(lambda: pressed.modal is not None)
    subtle = await finished(stack, await fake.submit_modal(rita, pressed, {"prompt": "a red circle at dusk"}))
    _, spec = await _spec_of(stack, subtle)
    assert (spec.kind, spec.prompt, spec.strength) == ("vary", "a red circle at dusk", SUBTLE_STRENGTH)

    assert "Remix mode is off" in await ephemeral_reply(
        stack, await fake.slash(rita, "settings remix", {"on": False})
    )
    direct = await finished(stack, await fake.press(rita, int(grid["id"]), f"dc:v:{grid_job}:0"))
    assert (await _spec_of(stack, direct))[1].prompt == "a red circle"  # off again: no form
