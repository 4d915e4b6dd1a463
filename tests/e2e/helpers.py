"""What the end-to-end tests share: reading messages, buttons and replies off the fake Discord."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image
from sqlalchemy import func, select

from tests.e2e.conftest import Stack

EPHEMERAL = 64


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_of(fake: Any, attachment: dict[str, Any]) -> Image.Image:
    with Image.open(io.BytesIO(fake.attachment_bytes(attachment))) as image:
        return image.convert("RGB")


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


async def count(stack: Stack, model: type) -> int:
    async with stack.jobs.sessions() as session:
        return (await session.scalar(select(func.count()).select_from(model))) or 0


async def ephemeral_reply(stack: Stack, interaction: Any) -> str:
    """The text of the ephemeral answer, given directly or as a follow-up after a defer."""
    fake = stack.fake
    await fake.wait_until(
        lambda: (interaction.response_type == 4) or bool(interaction.followup_ids), timeout=30
    )
    if interaction.response_type == 4:
        assert interaction.ephemeral
        return fake.message(interaction.original_id)["content"]  # type: ignore[index]
    message = fake.message(interaction.followup_ids[-1])
    assert message is not None and message["flags"] & EPHEMERAL
    return message["content"]


async def finished(stack: Stack, interaction: Any, timeout: float = 60) -> dict[str, Any]:
    """The interaction's own message once it shows a result picture."""
    fake = stack.fake
    await fake.wait_until(
        lambda: interaction.original_id and fake.message(interaction.original_id)["attachments"],
        timeout=timeout,
    )
    return fake.message(interaction.original_id)  # type: ignore[return-value]
