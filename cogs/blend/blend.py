"""/blend: 2-5 uploaded pictures prompt one grid through the model's IP-Adapter (their image tokens
side by side), with an optional text prompt and flags (--ar, --seed, --iw, --model …)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_bot import model_choices
from cogs.many import UNREAD_PICTURE, imagine_with_pictures, typed_specs
from cogs.options import prompt_with_options
from generation.errors import DreamcordError
from generation.specs import MAX_PROMPT_CHARS

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot

MIN_PICTURES = 2


class BlendCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="blend", description="Mix 2-5 pictures into four new ones")
    @app_commands.describe(
        image1="A picture to blend",
        image2="Another picture to blend (2-5 in all)",
        image3="Another picture (optional)",
        image4="Another picture (optional)",
        image5="Another picture (optional)",
        prompt="Words to steer the mix, and flags such as --ar 16:9 --seed 4 --iw 1.5 (optional)",
        model="Which configured model to use",
    )
    async def blend(
        self,
        interaction: discord.Interaction,
        image1: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        image5: discord.Attachment | None = None,
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS] | None = None,
        model: str | None = None,
    ) -> None:
        services = self.bot.services
        uploads = [image for image in (image1, image2, image3, image4, image5) if image is not None]
        if len(uploads) < MIN_PICTURES:
            raise DreamcordError("/blend mixes 2 to 5 pictures: attach at least one more (image2)")
        text = prompt_with_options(prompt or "", model=model).strip()
        unread = (UNREAD_PICTURE,) * len(uploads)
        specs, _ = await typed_specs(interaction, services, text, unread)  # checked before deferring
        await imagine_with_pictures(interaction, services, text, uploads, specs)

    @blend.autocomplete("model")
    async def _models(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices(self.bot.services.settings, current)
