"""The /imagine command: slash options become prompt flags, so one parser checks both."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_bot import model_choices
from cogs.many import (
    UNREAD_PICTURE,
    imagine_many,
    imagine_with_pictures,
    stored_pictures,
    typed_specs,
)
from cogs.options import prompt_with_options
from generation.errors import DreamcordError
from generation.specs import (
    MAX_PROMPT_CHARS,
    MAX_SEED,
    ControlMode,
    ControlRef,
    JobSpec,
    build_spec,
    check_control_mode,
)

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


class ImagineCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="imagine", description="Draw four pictures from a prompt")
    @app_commands.describe(
        prompt="What to draw; Midjourney-style flags such as --ar 16:9 --seed 42 --no text work here too",
        aspect="Aspect ratio W:H, from 1:4 to 4:1 (e.g. 16:9)",
        seed="Seed of the first image, for reproducible results",
        negative="What to avoid",
        steps="Denoising steps (more is slower, often finer)",
        guidance="How closely to follow the prompt (classifier-free guidance)",
        model="Which configured model to use",
        chaos="0-100: how different the four images are",
        tile="Make a seamless, repeating pattern",
        control_image="A picture whose edges (or depth / pose map) the result should follow (ControlNet)",
        control_mode="canny: edges found in the picture (default); depth or pose: the picture is that map",
        control_scale="0-2: how strongly the control picture steers (default 1)",
        image="A picture that prompts too (IP-Adapter): --iw 0-3 sets its weight, --sref takes only its style",
    )
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS],
        aspect: str | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        negative: str | None = None,
        steps: app_commands.Range[int, 1, 150] | None = None,
        guidance: app_commands.Range[float, 0.0, 30.0] | None = None,
        model: str | None = None,
        chaos: app_commands.Range[int, 0, 100] | None = None,
        tile: bool = False,
        control_image: discord.Attachment | None = None,
        control_mode: ControlMode = "canny",
        control_scale: app_commands.Range[float, 0.0, 2.0] = 1.0,
        image: discord.Attachment | None = None,
    ) -> None:
        text = prompt_with_options(
            prompt,
            aspect=aspect,
            seed=seed,
            negative=negative,
            steps=steps,
            guidance=guidance,
            model=model,
            chaos=chaos,
            tile=tile,
        )
        services = self.bot.services
        unread = (UNREAD_PICTURE,) if image is not None else ()
        specs, parsed = await typed_specs(interaction, services, text, unread)  # checked before deferring
        spec = specs[0]
        config = services.settings.model(spec.model)
        note = services.settings.habit_note(parsed)
        if len(specs) > 1 and control_image is not None:
            raise DreamcordError("{…} choices and --repeat cannot be used with a control image")
        if image is not None and control_image is not None:
            raise DreamcordError(
                "a control image and an image prompt cannot be combined yet; use one of them"
            )
        if image is not None:
            await imagine_with_pictures(interaction, services, text, [image], specs)
        elif control_image is not None:
            check_control_mode(config.name, config.controlnets, control_mode)  # before deferring: ephemeral

            async def with_control() -> JobSpec:
                (digest,) = await stored_pictures(services, [control_image])
                control = build_spec(ControlRef, image=digest, mode=control_mode, scale=control_scale)
                return spec.model_copy(update={"control": control})

            await services.interactive.run_prepared(interaction, with_control)
        else:
            await imagine_many(interaction, services, specs)
        if note is not None and interaction.response.is_done():
            await interaction.followup.send(note, ephemeral=True)

    @imagine.autocomplete("model")
    async def _models(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices(self.bot.services.settings, current)
