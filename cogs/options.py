"""Slash-command options that several cogs share: the picture a command starts from (an upload, or
an earlier result by job number and index) and prompt options as the text the parser reads."""

from __future__ import annotations

from discord import app_commands

# A picture to start from: `image` (an upload) or `job` + `index` (an earlier result; cogs.pictures).
JobNumber = app_commands.Range[int, 1]
PictureIndex = app_commands.Range[int, 1, 4]
JOB_HELP = "The job number of an earlier result (shown under it)"
INDEX_HELP = "Which picture of that job, 1-4 (default 1)"


def prompt_with_options(prompt: str, **options: object) -> str:
    """Append slash options as `--flags` (a flag typed in the prompt and the same option both set is an error)."""
    flags = {
        "aspect": "--ar",
        "seed": "--seed",
        "negative": "--no",
        "steps": "--steps",
        "guidance": "--cfg",
        "model": "--model",
        "chaos": "--chaos",
    }
    parts = [prompt]
    for name, flag in flags.items():
        value = options.get(name)
        if value is not None:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    if options.get("tile"):
        parts.append("--tile")
    return " ".join(parts)
