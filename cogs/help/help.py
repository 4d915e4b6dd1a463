"""/help topic:prompts|buttons|training|library. The prompt screen is built from the parser's own flag
table, so it cannot drift from what the parser accepts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from generation.prompt import FLAG_FORMS, HABIT_FLAGS

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot

Topic = Literal["prompts", "buttons", "training", "library"]


def prompts_help() -> str:
    flags = "\n".join(f"• `{form.split(' (')[0]}`{' — ' + form.split(' (', 1)[1][:-1] if ' (' in form else ''}"
                      for form in FLAG_FORMS.values())  # fmt: skip
    habits = ", ".join(f"`--{name}`" for name in HABIT_FLAGS)
    return (
        "**Prompts** — describe the picture, then add flags:\n"
        f"{flags}\n"
        "• `<name>` or `<name:0.7>` — one of your tokens (see `/help library`); A1111's `<lora:name:0.7>` too\n"
        "• weights: `(word:1.3)`, `(word)`, `[word]` as in A1111; `a cat::2 a dog` as in Midjourney "
        "(`thing::-0.5` is `--no thing`); `{red, blue}` runs one job per choice\n"
        "• long prompts are read in full (in 75-token windows); `/info job:N` shows the count\n"
        f"Midjourney's {habits} are accepted: `--v`/`--niji` pick a model where the server maps them, "
        "the others change nothing here (you are told which)."
    )


TOPICS: dict[str, str] = {
    "buttons": (
        "**Buttons** — under a grid: **U1–U4** that picture alone, **🔄** four new ones, **V1–V4** four "
        "variations of one. Under a single picture: **Vary (Subtle/Strong)**, **Vary (Region)** (repaint a "
        "box), **Upscale 2x/4x**, **Zoom Out**, **Make Square** and the pans **⬅️ ➡️ ⬆️ ⬇️**. Whoever "
        "presses owns the new job. Buttons a model cannot do are not shown. `/describe` suggests four "
        "prompts for a picture (an upload or `job:N`); press **1–4** to imagine one, **Imagine all** for "
        "all four. `/blend` mixes 2-5 pictures; `/imagine … image:` lets a picture prompt too (`--iw`, "
        "`--sref`). `/queue` lists and cancels your jobs; `/show job:N` shows a result again."
    ),
    "training": (
        "**Training** — `/train token:rex class_noun:dog photo1: photo2: photo3: consent:True` teaches the "
        "bot a token from 3 or more photos of you or of something you may use (`method:lora` or "
        "`embedding`). It runs in the background and ends with samples; then write `<rex>` in a prompt. "
        "The photos are deleted when it ends unless `keep_photos:True`."
    ),
    "library": (
        "**Library** — `/library list|show|rename|delete|share|import`: your tokens are yours alone until "
        "you share them with the server or everyone. `import` takes a .safetensors LoRA or embedding as "
        "an attachment or a `url:` (Hugging Face, Civitai). `/forget` deletes everything of yours."
    ),
}


class HelpCog(commands.Cog):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="help", description="How to use dreamcord: prompts, buttons, training, library"
    )
    @app_commands.describe(topic="What to explain (default: prompts)")
    async def help(self, interaction: discord.Interaction, topic: Topic = "prompts") -> None:
        text = prompts_help() if topic == "prompts" else TOPICS[topic]
        others = ", ".join(f"`/help {other}`" for other in ("prompts", *TOPICS) if other != topic)
        await interaction.response.send_message(f"{text}\n\nMore: {others}", ephemeral=True)
