"""/train: photos in, `<token>` out. Photos are checked and prepared before the job is queued, so a bad
photo is an ephemeral message and nothing is stored; the training itself runs on the training lane."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.attachments import read_attachment
from bot.discord_bot import model_choices
from bot.interactive import reply_error
from generation.models.checkpoint_facts import native_resolution
from generation.specs import JobSpec
from generation.training.defaults import train_spec
from generation.training.photos import prepare_training_photos

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot

Photo = discord.Attachment  # 3 required + 15 optional: with the other options, Discord's 25 per command
CONSENT_NEEDED = (
    "Training needs your confirmation (`consent: True`) that the photos are of you, or of something "
    "you have the right to use. Nothing was uploaded or queued."
)


class TrainCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="train", description="Teach the bot a new token from 3-18 photos of one thing")
    @app_commands.describe(
        token="Name to use in prompts as <name>: 2-32 letters, digits, - or _",
        class_noun="What the photos show, in a word or two: dog, person, coffee mug",
        method="lora (DreamBooth, strongest) or embedding (textual inversion, tiny file)",
        steps="Training steps (default: the model's setting)",
        model="Base model to train on (default: the server's default)",
        photo1="A photo (3 are required, up to 18)",
        consent="I confirm these photos are of me, or of something I have the right to use",
        keep_photos="Keep the photos after training (default: they are deleted when it ends)",
    )
    async def train(
        self,
        interaction: discord.Interaction,
        token: app_commands.Range[str, 2, 32],
        class_noun: app_commands.Range[str, 2, 40],
        photo1: Photo,
        photo2: Photo,
        photo3: Photo,
        consent: bool,
        method: Literal["lora", "embedding"] = "lora",
        steps: app_commands.Range[int, 1, 5000] | None = None,
        model: str | None = None,
        photo4: Photo | None = None,
        photo5: Photo | None = None,
        photo6: Photo | None = None,
        photo7: Photo | None = None,
        photo8: Photo | None = None,
        photo9: Photo | None = None,
        photo10: Photo | None = None,
        photo11: Photo | None = None,
        photo12: Photo | None = None,
        photo13: Photo | None = None,
        photo14: Photo | None = None,
        photo15: Photo | None = None,
        photo16: Photo | None = None,
        photo17: Photo | None = None,
        photo18: Photo | None = None,
        keep_photos: bool = False,
    ) -> None:
        photos = [
            photo
            for photo in (photo1, photo2, photo3, photo4, photo5, photo6, photo7, photo8, photo9, photo10,
                          photo11, photo12, photo13, photo14, photo15, photo16, photo17, photo18)
            if photo is not None
        ]  # fmt: skip
        if not consent:
            await reply_error(interaction, CONSENT_NEEDED)
            return
        services = self.bot.services
        config = services.settings.model(model or await services.admin.guild_model(interaction.guild_id))

        async def prepare() -> JobSpec:
            resolution = native_resolution(config)
            uploads = [(photo.filename, await read_attachment(photo)) for photo in photos]
            prepared = await asyncio.to_thread(prepare_training_photos, uploads, resolution)
            hashes = await services.jobs.store_files(prepared.pngs)
            return train_spec(
                config,
                resolution,
                token=token,
                class_noun=class_noun,
                method=method,
                images=tuple(hashes),
                steps=steps,
                consent=True,
                keep_photos=keep_photos,
            )

        await services.interactive.run_prepared(interaction, prepare)

    @train.autocomplete("model")
    async def _models(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices(self.bot.services.settings, current)
