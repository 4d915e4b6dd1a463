"""The words on a job's Discord message: its title while it runs and the caption of its result."""

from __future__ import annotations

import json
import re

import discord

from generation.specs import (
    ADAPTER_KIND_NAMES,
    DescribeSpec,
    ImportSpec,
    JobSpec,
    PromptedSpec,
    TrainSpec,
    spec_from_json,
)
from storage.models import Job

METHOD_NAMES = ADAPTER_KIND_NAMES
MAX_PROMPT_SHOWN = 1500  # of a 2000-character message, the rest is the caption around it


def shown_text(text: str, limit: int = MAX_PROMPT_SHOWN) -> str:
    """User text as Discord should show it inside our formatting: markdown escaped (a prompt cannot
    turn the caption into links or headings), at most `limit` characters after escaping. Mentions in
    it ping nobody: the bot's messages allow no mentions (bot.discord_bot)."""
    escaped = discord.utils.escape_markdown(text)
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    if (len(cut) - len(cut.rstrip("\\"))) % 2:  # never end on half of an escape
        cut = cut[:-1]
    return cut + "…"


def code_block(text: str) -> str:
    """`text` in a code block it cannot close: a zero-width space goes between backticks."""
    return "```\n" + re.sub("`(?=`)", "`\u200b", text) + "\n```"


def job_title(spec: JobSpec) -> str:
    """The job's own words for itself (generation.specs), as Discord should show them."""
    return shown_text(spec.title())


def result_caption(job: Job) -> str:
    spec = spec_from_json(job.spec_json)
    if isinstance(spec, PromptedSpec):
        seeds = f"seed {spec.seeds[0]}" if len(spec.seeds) == 1 else f"seeds {spec.seeds[0]}–{spec.seeds[-1]}"
        prompt = shown_text(spec.prompt)
        words = spec.operation_words()
        kind = f" · {words}" if words else ""
        return f"**{prompt}** — <@{job.owner_id}>{kind} · {seeds} · {spec.model} · {spec.steps} steps · job {job.id}"
    if isinstance(spec, TrainSpec):
        return (
            f"**<{spec.token}>** is ready — <@{job.owner_id}>'s {METHOD_NAMES[spec.method]} of a {spec.class_noun}, "
            f"trained on {len(spec.images)} photos for {spec.model}. Use it in any prompt: "
            f"`/imagine a <{spec.token}> on the beach` (or `<{spec.token}:0.7>` for less). "
            f"It is private until you `/library share` it. Samples below · job {job.id}"
        )
    if isinstance(spec, ImportSpec):
        return (
            f"**<{spec.name}>** is in <@{job.owner_id}>'s library ({METHOD_NAMES[spec.adapter_kind]} for "
            f"{spec.model}); use it as `<{spec.name}>` in prompts · job {job.id}"
        )
    if isinstance(spec, DescribeSpec):
        return describe_caption(job, spec)
    return f"{spec.kind} — <@{job.owner_id}> · job {job.id}"


NUMBERS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣")
MAX_SUGGESTION_SHOWN = 350  # four of them and the heading fit one message


def suggestions_of(job: Job) -> list[str]:
    """What a /describe job suggested (empty for other jobs and before it is done)."""
    return list(json.loads(job.texts_json)) if job.texts_json else []


def describe_caption(job: Job, spec: DescribeSpec) -> str:
    lines = [f"**Described** for {spec.model} — <@{job.owner_id}> · job {job.id}"]
    lines += [
        f"{number} {shown_text(text, MAX_SUGGESTION_SHOWN)}"
        for number, text in zip(NUMBERS, suggestions_of(job), strict=False)
    ]
    lines.append("Press a number to imagine that prompt.")
    return "\n".join(lines)
