"""/settings: defaults every /imagine of yours starts from (aspect, steps, guidance, chaos, negative,
model), stored as prompt flags so the prompt parser checks them. Flags you type still win."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_bot import model_choices
from cogs.options import prompt_with_options
from generation.prompt import format_defaults, parse_defaults, with_defaults

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


class SettingsCog(commands.GroupCog, group_name="settings", group_description="Your defaults for /imagine"):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot
        super().__init__()

    async def _reply(self, interaction: discord.Interaction, flags: str, what: str) -> None:
        shown = f"`{flags}`" if flags else "none (the model's and the server's defaults)"
        await interaction.response.send_message(f"{what}Your defaults: {shown}", ephemeral=True)

    @app_commands.command(name="show", description="Show your defaults")
    async def show(self, interaction: discord.Interaction) -> None:
        await self._reply(interaction, await self.bot.services.admin.saved_flags(interaction.user.id), "")

    @app_commands.command(name="set", description="Change some of your defaults (the others stay)")
    @app_commands.describe(
        aspect="Aspect ratio W:H (e.g. 3:2)",
        steps="Denoising steps",
        guidance="How closely to follow the prompt",
        chaos="0-100: how different the four images are",
        negative="What to avoid in every picture",
        model="Which configured model to use",
    )
    async def set_(
        self,
        interaction: discord.Interaction,
        aspect: str | None = None,
        steps: app_commands.Range[int, 1, 150] | None = None,
        guidance: app_commands.Range[float, 0.0, 30.0] | None = None,
        chaos: app_commands.Range[int, 0, 100] | None = None,
        negative: str | None = None,
        model: str | None = None,
    ) -> None:
        admin = self.bot.services.admin
        given = prompt_with_options(
            "", aspect=aspect, steps=steps, guidance=guidance, chaos=chaos, negative=negative, model=model
        )
        if not given.strip():
            await interaction.response.send_message("Give at least one option to change.", ephemeral=True)
            return
        saved = await admin.saved_flags(interaction.user.id)
        merged = (
            parse_defaults(given)
            if not saved
            else with_defaults(parse_defaults(given), parse_defaults(saved))
        )
        flags = format_defaults(merged)
        await admin.save_flags(interaction.user.id, flags)
        await self._reply(interaction, flags, "Saved. ")

    @set_.autocomplete("model")
    async def _models(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices(self.bot.services.settings, current)

    @app_commands.command(
        name="remix", description="Remix mode: V, 🔄 and Vary let you edit the prompt first"
    )
    @app_commands.describe(on="True: a form with the prompt opens before each of those jobs")
    async def remix(self, interaction: discord.Interaction, on: bool) -> None:
        await self.bot.services.admin.set_remix(interaction.user.id, on)
        state = "on: V, 🔄 and Vary open a form with the prompt to edit" if on else "off"
        await interaction.response.send_message(f"Remix mode is {state}.", ephemeral=True)

    @app_commands.command(name="reset", description="Forget your defaults")
    async def reset(self, interaction: discord.Interaction) -> None:
        await self.bot.services.admin.save_flags(interaction.user.id, "")
        await self._reply(interaction, "", "Cleared. ")
