"""What was measured about a job, stored with it as JSON and shown by `/info job`: the prompt's
length in tokens (the asker should see when it runs past one window), and where the time went —
queue wait (from the job's own timestamps), the worker's phases (generation.timings) and the
upload to Discord — so an operator can see the bottleneck."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from generation.outputs import JobOutput, PromptTokens
from generation.timings import PHASES


def stats_json(output: JobOutput) -> str | None:
    stats: dict[str, Any] = {}
    if output.tokens is not None:
        tokens = output.tokens
        stats["tokens"] = {"count": tokens.count, "window": tokens.window, "chunks": tokens.chunks}
    if output.timings:
        stats["seconds"] = dict(output.timings)
    return json.dumps(stats) if stats else None


def with_upload(raw: str | None, seconds: float) -> str:
    """The stats with the time the result took to post to Discord."""
    stats = json.loads(raw) if raw else {}
    stats.setdefault("seconds", {})["upload"] = round(seconds, 4)
    return json.dumps(stats)


def stats_lines(
    raw: str | None, created: datetime | None = None, started: datetime | None = None
) -> list[str]:
    """One line per thing measured, for a job's /info (nothing for jobs from before it was stored)."""
    if not raw:
        return []
    stats = json.loads(raw)
    lines = []
    if "tokens" in stats:
        lines.append(f"Prompt: {PromptTokens(**stats['tokens']).describe()}")
    seconds: dict[str, float] = stats.get("seconds", {})
    parts = []
    if created is not None and started is not None:
        parts.append(f"queued {_seconds((started - created).total_seconds())}")
    parts += [f"{phase} {_seconds(seconds[phase])}" for phase in (*PHASES, "upload") if phase in seconds]
    if parts:
        lines.append("Time: " + " · ".join(parts))
    return lines


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"
