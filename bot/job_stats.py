"""What the worker measured about a job, stored with it as JSON and shown by `/info job`: the
prompt's length in tokens (weights and chunks make a long prompt work; the asker should see when it
runs past one window)."""

from __future__ import annotations

import json
from typing import Any

from generation.outputs import JobOutput, PromptTokens


def stats_json(output: JobOutput) -> str | None:
    stats: dict[str, Any] = {}
    if output.tokens is not None:
        tokens = output.tokens
        stats["tokens"] = {"count": tokens.count, "window": tokens.window, "chunks": tokens.chunks}
    return json.dumps(stats) if stats else None


def stats_lines(raw: str | None) -> list[str]:
    """One line per thing measured, for a job's /info (nothing for jobs from before it was stored)."""
    if not raw:
        return []
    stats = json.loads(raw)
    lines = []
    if "tokens" in stats:
        lines.append(f"Prompt: {PromptTokens(**stats['tokens']).describe()}")
    return lines
