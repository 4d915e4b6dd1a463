"""/prefer suffix and /prefer option set|unset|list, as in Midjourney: a suffix added to every /imagine
prompt of yours, and named option sets (`/prefer option set name:mine value:--ar 3:2 --cfg 5`, then
`--mine` in a prompt). Stored with your personal settings; checked by the prompt parser when saved."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


class PreferCog(
    commands.GroupCog, group_name="prefer", group_description="Your prompt suffix and option sets"
):
    option = app_commands.Group(name="option", description="Named option sets: --name in a prompt")

    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="suffix", description="Text and flags added to every /imagine of yours")
    @app_commands.describe(value="e.g. --ar 3:2 --no text (leave empty to remove your suffix)")
    async def suffix(self, interaction: discord.Interaction, value: str | None = None) -> None:
        await self.bot.services.admin.set_suffix(interaction.user.id, value)
        shown = f"`{' '.join(value.split())}` is added to your prompts" if value else "removed"
        await interaction.response.send_message(f"Your suffix: {shown}.", ephemeral=True)

    @option.command(name="set", description="Save flags under a name; then write --name in a prompt")
    @app_commands.describe(name="e.g. mine", value="e.g. --ar 3:2 --cfg 5")
    async def set_(self, interaction: discord.Interaction, name: str, value: str) -> None:
        options = await self.bot.services.admin.set_option(interaction.user.id, name, value)
        saved = name.lower()
        await interaction.response.send_message(
            f"Saved: `--{saved}` means `{options[saved]}`.", ephemeral=True
        )

    @option.command(name="unset", description="Remove one of your option sets")
    async def unset(self, interaction: discord.Interaction, name: str) -> None:
        await self.bot.services.admin.set_option(interaction.user.id, name, None)
        await interaction.response.send_message(f"Removed `--{name.lower()}`.", ephemeral=True)

    @option.command(name="list", description="Your option sets and suffix")
    async def list_(self, interaction: discord.Interaction) -> None:
        suffix, options = await self.bot.services.admin.preferences(interaction.user.id)
        lines = [f"• `--{name}` = `{value}`" for name, value in sorted(options.items())] or ["no option sets"]
        lines.append(f"suffix: `{suffix}`" if suffix else "no suffix")
        await interaction.response.send_message("\n".join(lines), ephemeral=True)
