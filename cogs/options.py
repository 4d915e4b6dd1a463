"""Slash-command options that several cogs share, as the prompt text the parser reads."""

from __future__ import annotations


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
