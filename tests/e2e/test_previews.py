"""Progress edits carry a low-resolution preview of the picture being drawn (#5)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")
E2E_PREVIEW_INTERVAL_S = 0.05  # tiny jobs are quick: previews often enough to be seen


async def test_progress_edits_show_a_low_resolution_preview(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.job_messages

    monkeypatch.setattr(bot.job_messages, "PROGRESS_INTERVAL_S", 0.02)  # every step may be shown
    fake = stack.fake
    flo = fake.add_user("flo")
    interaction = await fake.slash(flo, "imagine", {"prompt": "a red circle --seed 8 --steps 60"})

    def result_shown() -> bool:
        message = fake.message(interaction.original_id)
        return bool(message and any(a["filename"].startswith("dreamcord_") for a in message["attachments"]))

    await fake.wait_until(result_shown, timeout=60)
    history = fake.message(interaction.original_id)["history"]  # type: ignore[index]
    previews = [edit for edit in history if "— step" in edit["content"] and edit["files"]]
    assert previews and all(edit["files"] == ["preview.png"] for edit in previews)
    shown = next(a for a in fake.attachments.values() if a.filename == "preview.png")
    with Image.open(io.BytesIO(shown.data)) as preview:
        assert max(preview.size) <= 128 and preview.getextrema() != ((0, 0), (0, 0), (0, 0))
    assert history[-1]["files"][0].startswith("dreamcord_")  # the result replaced it
