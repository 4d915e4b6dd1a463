"""Reading Discord attachments: the size is checked from Discord's metadata before a byte is fetched,
and a download Discord cannot deliver is a clear error, not a crash."""

from __future__ import annotations

import aiohttp
import discord

from bot.captions import shown_text
from generation.errors import DreamcordError
from generation.pictures.uploads import MAX_UPLOAD_BYTES, UserImageError


class DownloadFailed(DreamcordError):
    """Discord's CDN did not deliver an attachment (expired, deleted, or a network failure)."""


async def read_attachment(attachment: discord.Attachment, limit: int = MAX_UPLOAD_BYTES) -> bytes:
    name = shown_text(attachment.filename, 100)
    if attachment.size > limit:
        raise UserImageError(
            f"{name} is {attachment.size / 2**20:.1f} MiB; the limit is {limit // 2**20} MiB"
        )
    try:
        return await attachment.read()
    except (TimeoutError, discord.HTTPException, aiohttp.ClientError) as error:
        status = getattr(error, "status", None)
        why = f"Discord answered {status}" if status else "the download failed"
        raise DownloadFailed(f"could not download {name} ({why}); please upload it again") from error
