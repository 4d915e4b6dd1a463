"""Reading Discord attachments: the size is checked from Discord's metadata before a byte is fetched."""

from __future__ import annotations

import discord

from generation.user_images import MAX_UPLOAD_BYTES, UserImageError


async def read_attachment(attachment: discord.Attachment, limit: int = MAX_UPLOAD_BYTES) -> bytes:
    if attachment.size > limit:
        raise UserImageError(
            f"{attachment.filename} is {attachment.size / 2**20:.1f} MiB; the limit is {limit // 2**20} MiB"
        )
    return await attachment.read()
