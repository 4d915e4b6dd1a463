"""The one gate every interaction passes (slash commands, buttons, forms), and who is asking.

Bans are checked here before anything is posted or a form opens, and refused with one ephemeral line.
What stays open to banned users is said where it is declared (/forget, the Cancel button): erasing or
stopping one's own things needs no permission to generate.
"""

from __future__ import annotations

import discord

from bot.admin import AdminService, Banned
from bot.interactive import reply_error
from bot.visibility import Viewer


async def admit(interaction: discord.Interaction, admin: AdminService) -> bool:
    """True when the user may go on; otherwise the refusal is answered here (not for autocomplete,
    which cannot show a message)."""
    try:
        await admin.check_not_banned(interaction.user.id, interaction.guild_id)
    except Banned as error:
        if interaction.type != discord.InteractionType.autocomplete:
            await reply_error(interaction, str(error))
        return False
    return True


def is_admin(interaction: discord.Interaction) -> bool:
    """Whether Discord says the user administers this server (the interaction's resolved permissions)."""
    return interaction.guild_id is not None and interaction.permissions.administrator


def viewer_of(interaction: discord.Interaction) -> Viewer:
    """The Viewer behind an interaction; another channel of the server counts as seen when Discord's
    permissions (as cached from the gateway) let the member view it."""
    guild, member = interaction.guild, interaction.user

    def sees_channel(channel_id: int) -> bool:
        channel = guild.get_channel_or_thread(channel_id) if guild is not None else None
        if channel is None or not isinstance(member, discord.Member):
            return False  # a channel we do not know (deleted, or not cached): not shown
        return channel.permissions_for(member).view_channel

    return Viewer(
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        is_admin=is_admin(interaction),
        channel_id=interaction.channel_id,
        sees_channel=sees_channel,
    )
