"""What /info job shows of a job's measurements: token count and where the time went."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.job_stats import stats_json, stats_lines, with_upload
from generation.outputs import JobOutput, PromptTokens


def test_tokens_and_phases_read_back_in_the_order_a_job_meets_them() -> None:
    output = JobOutput(
        images=(),
        elapsed_s=3.0,
        tokens=PromptTokens(count=143, window=75),
        timings=(("model switch", 0.012), ("denoising", 2.5), ("decode", 0.4), ("picture encoding", 0.03)),
    )
    raw = with_upload(stats_json(output), 0.25)
    created = datetime(2026, 12, 3, tzinfo=UTC)
    lines = stats_lines(raw, created, created + timedelta(seconds=12.5))
    assert lines == [
        "Prompt: 143 tokens, encoded in 2 windows of 75",
        "Time: queued 12 s · model switch 0.01 s · denoising 2.50 s · decode 0.40 s · picture encoding 0.03 s"
        " · upload 0.25 s",
    ]
    assert json.loads(raw)["seconds"]["upload"] == 0.25


def test_jobs_from_before_stats_show_nothing_and_flux_says_its_cut() -> None:
    assert stats_lines(None) == []
    cut = JobOutput(images=(), elapsed_s=1.0, tokens=PromptTokens(count=600, window=511, chunks=False))
    assert stats_lines(stats_json(cut)) == ["Prompt: 600 tokens; the text encoder reads the first 511"]
