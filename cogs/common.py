"""What every button and form of the cogs shares: the gate before anything happens, one error handler
after, and the bot behind an interaction."""

from __future__ import annotations

import logging
from typing import ClassVar

import discord

from bot.discord_bot import DreamcordBot
from bot.gate import admit
from bot.interactive import answer_error

log = logging.getLogger(__name__)


def dreamcord_bot(bot: object) -> DreamcordBot:
    """The bot an extension's setup() or a command is given, as the type it is."""
    assert isinstance(bot, DreamcordBot)
    return bot


def bot_of(interaction: discord.Interaction) -> DreamcordBot:
    return dreamcord_bot(interaction.client)


async def delete_posted(bot: discord.Client, channel_id: int, message_id: int) -> None:
    """Delete a message the bot posted. Best effort: a message someone already deleted, or a channel
    the bot left, is skipped."""
    channel = bot.get_partial_messageable(channel_id)
    try:
        await channel.get_partial_message(message_id).delete()
    except discord.HTTPException as error:
        log.info("could not delete message %d in %d: %s", message_id, channel_id, error)


class Gated:
    """Mixin for a persistent button (before `discord.ui.DynamicItem` in the bases): the ban gate runs
    first, then `run`; whatever `run` raises is answered by the one error handler. Without it,
    discord.py would only log a failing dynamic item and the presser would see "interaction failed"."""

    open_to_banned: ClassVar[bool] = False  # e.g. Cancel: stopping one's own job needs no permission

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return self.open_to_banned or await admit(interaction, bot_of(interaction).services.admin)

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self.run(interaction)
        except Exception as error:
            await answer_error(interaction, error, f"button {type(self).__name__}")

    async def run(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError
