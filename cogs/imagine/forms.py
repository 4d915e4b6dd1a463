"""Forms that keep no state in memory (Vary (Region), remix): the form's custom_id names what it is
for, and a listener answers its submission from that, so a form opened before a restart still works."""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.gate import admit
from cogs.common import bot_of
from generation.specs import MAX_PROMPT_CHARS


def stateless_form(title: str, custom_id: str, *inputs: discord.ui.TextInput[Any]) -> discord.ui.Modal:
    """A form answered by a listener from its custom_id alone, never kept by discord.py's view store."""
    form = discord.ui.Modal(title=title, custom_id=custom_id, timeout=None)
    for text_input in inputs:
        form.add_item(text_input)
    form.stop()
    return form


def prompt_input(label: str, prompt: str) -> discord.ui.TextInput[Any]:
    """The form's prompt field, filled in with the picture's prompt."""
    return discord.ui.TextInput(
        label=label,
        custom_id="prompt",
        style=discord.TextStyle.paragraph,
        default=prompt[:MAX_PROMPT_CHARS],
        max_length=MAX_PROMPT_CHARS,
    )


def form_values(data: Any) -> dict[str, str]:
    """The text inputs of a submitted form, by custom_id (in action rows or in labels)."""
    values = {}
    for row in data.get("components", []):
        for component in row.get("components", []) + ([row["component"]] if "component" in row else []):
            if "custom_id" in component:
                values[component["custom_id"]] = str(component.get("value", ""))
    return values


async def submitted_form(
    interaction: discord.Interaction, pattern: re.Pattern[str]
) -> tuple[re.Match[str], dict[str, str]] | None:
    """The custom_id's match and the values of a submitted form whose custom_id fits `pattern`, from a
    user the gate admits; None for every other interaction (or a refused user, already answered)."""
    if interaction.type != discord.InteractionType.modal_submit:
        return None
    data: Any = interaction.data or {}
    match = pattern.fullmatch(str(data.get("custom_id", "")))
    if match is None or not await admit(interaction, bot_of(interaction).services.admin):
        return None
    return match, form_values(data)
