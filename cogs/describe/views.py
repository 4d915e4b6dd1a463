"""The buttons under /describe's suggestions: 1-4 imagine that suggestion, "Imagine all" all four.

Persistent `DynamicItem`s (the custom_id carries the job and the number), so they work after a
restart. Whoever presses owns the new jobs, made as if they had typed the prompt in /imagine (their
defaults, option sets and suffix), on the model the suggestions were written for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import discord

from bot.captions import suggestions_of
from bot.gate import viewer_of
from bot.jobs import StoredImage
from cogs.common import Gated, bot_of
from cogs.many import imagine_many, typed_specs
from generation.errors import DreamcordError
from generation.specs import DescribeSpec, ImagineSpec, spec_from_json
from storage.models import Job

ALL = "a"


def describe_view(job: Job, images: Sequence[StoredImage]) -> discord.ui.View | None:
    suggestions = suggestions_of(job)
    if not suggestions:
        return None
    view = discord.ui.View(timeout=None)
    for number in range(1, len(suggestions) + 1):
        view.add_item(SuggestionButton(str(number), job.id))
    if len(suggestions) > 1:
        view.add_item(SuggestionButton(ALL, job.id))
    return view


class SuggestionButton(
    Gated,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"dc:d(?P<which>[1-4a]):(?P<job>\d+)",
):
    def __init__(self, which: str, job_id: int) -> None:
        label = "Imagine all" if which == ALL else which
        style = discord.ButtonStyle.primary if which == ALL else discord.ButtonStyle.secondary
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"dc:d{which}:{job_id}"))
        self.which, self.job_id = which, job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> SuggestionButton:
        return cls(match["which"], int(match["job"]))

    async def run(self, interaction: discord.Interaction) -> None:
        bot = bot_of(interaction)
        services = bot.services
        job = await services.jobs.visible_job(self.job_id, viewer_of(interaction))  # the one rule
        spec = spec_from_json(job.spec_json)
        suggestions = suggestions_of(job)
        if not isinstance(spec, DescribeSpec) or not suggestions:
            raise DreamcordError(f"job {job.id} has no suggestions to imagine")
        if self.which == ALL:
            chosen = suggestions
        elif int(self.which) <= len(suggestions):
            chosen = [suggestions[int(self.which) - 1]]
        else:
            raise DreamcordError(f"job {job.id} has no suggestion {self.which}")
        specs: list[ImagineSpec] = []
        for text in chosen:  # on the model the suggestions were written for
            made, _ = await typed_specs(interaction, services, f"{text} --model {spec.model}")
            specs += made
        await imagine_many(interaction, services, specs, parent_job_id=job.id)
