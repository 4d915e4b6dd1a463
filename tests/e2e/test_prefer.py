"""/prefer, end to end: an option set written as --name and a suffix reach the job's stored spec; a bad
value is refused when saved; unset takes it back."""

from __future__ import annotations

import pytest

from generation.specs import spec_from_json
from tests.e2e.conftest import Stack
from tests.e2e.helpers import ephemeral_reply, finished
from tests.e2e.test_permissions import job_of

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _spec_of(stack: Stack, user: int, prompt: str) -> object:
    message = await finished(stack, await stack.fake.slash(user, "imagine", {"prompt": prompt}))
    job = await stack.jobs.get_job(job_of(message))
    assert job is not None
    return spec_from_json(job.spec_json)


async def test_option_sets_and_a_suffix_shape_every_imagine(stack: Stack) -> None:
    fake = stack.fake
    pia = fake.add_user("pia")
    saved = await fake.slash(pia, "prefer option set", {"name": "wide", "value": "--ar 2:1 --steps 2"})
    assert await ephemeral_reply(stack, saved) == "Saved: `--wide` means `--ar 2:1 --steps 2`."
    suffix = await fake.slash(pia, "prefer suffix", {"value": "--no blur --cfg 5"})
    assert "is added to your prompts" in await ephemeral_reply(stack, suffix)
    bad = await fake.slash(pia, "prefer option set", {"name": "oops", "value": "--ar 9:1"})
    assert "--ar got '9:1'" in await ephemeral_reply(stack, bad)
    taken = await fake.slash(pia, "prefer option set", {"name": "no", "value": "--steps 3"})
    assert "--no is already a flag" in await ephemeral_reply(stack, taken)

    spec = await _spec_of(stack, pia, "a red circle --wide --cfg 7")
    assert spec.width / spec.height == pytest.approx(2, abs=0.25) and spec.steps == 2  # type: ignore[attr-defined]
    assert (spec.negative_prompt, spec.guidance) == ("blur", 7.0)  # type: ignore[attr-defined]  # its own --cfg won

    listed = await fake.slash(pia, "prefer option list")
    assert (
        await ephemeral_reply(stack, listed)
        == "• `--wide` = `--ar 2:1 --steps 2`\nsuffix: `--no blur --cfg 5`"
    )
    await ephemeral_reply(stack, await fake.slash(pia, "prefer option unset", {"name": "wide"}))
    await ephemeral_reply(stack, await fake.slash(pia, "prefer suffix"))
    after = await fake.slash(pia, "imagine", {"prompt": "a red circle --wide"})
    assert "unknown flag --wide" in await ephemeral_reply(stack, after)
