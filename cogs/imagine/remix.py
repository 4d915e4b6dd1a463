"""Remix mode (/settings remix on:True): V, 🔄, Vary (Subtle) and Vary (Strong) open a form with the
prompt (and its flags) to edit first. Like Vary (Region), the form keeps no state in memory: its
custom_id names the action, job and picture, and `submit_remix_form` answers it after a restart too."""

from __future__ import annotations

import re
import secrets
from typing import cast

import discord

from bot.gate import viewer_of
from bot.interactive import answer_error
from cogs.actions import vary
from cogs.common import bot_of
from cogs.imagine.forms import prompt_input, stateless_form, submitted_form
from cogs.pictures import stored_picture, with_prompt
from generation.specs import MAX_SEED, STRONG_STRENGTH, SUBTLE_STRENGTH, JobSpec, seeds_from

REMIX_ACTIONS = {"v": "Remix: variations", "r": "Remix: new pictures", "vs": "Remix: Vary (Subtle)",
                 "vt": "Remix: Vary (Strong)"}  # fmt: skip
REMIX_FORM = re.compile(r"dc:rmx:(?P<action>v|r|vs|vt):(?P<job>\d+):(?P<index>\d)")


def remix_form(action: str, job_id: int, index: int, prompt: str) -> discord.ui.Modal:
    return stateless_form(
        REMIX_ACTIONS[action],
        f"dc:rmx:{action}:{job_id}:{index}",
        prompt_input("Prompt (flags such as --no, --steps, --cfg too)", prompt),
    )


async def submit_remix_form(interaction: discord.Interaction) -> None:
    """Answer a submitted remix form (interactions of any other kind are left alone)."""
    if (submitted := await submitted_form(interaction, REMIX_FORM)) is None:
        return
    match, values = submitted
    bot = bot_of(interaction)
    action, job_id, index = match["action"], int(match["job"]), int(match["index"])
    try:
        prompt = values.get("prompt", "")
        picture = await stored_picture(bot, job_id, index, viewer_of(interaction))
        spec: JobSpec
        if action == "r":
            remixed = with_prompt(picture, prompt).spec
            fresh = seeds_from(secrets.randbelow(MAX_SEED + 1), len(remixed.seeds))
            spec = cast(JobSpec, remixed.model_copy(update={"seeds": fresh}))  # the job's own kind
        else:
            spec = vary(picture, SUBTLE_STRENGTH if action == "vs" else STRONG_STRENGTH, prompt=prompt)
        await bot.services.interactive.run(interaction, spec, parent_job_id=job_id)
    except Exception as error:
        await answer_error(interaction, error, "remix form")
