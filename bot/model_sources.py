"""Where a configured model's weights are ("local", "single file", "cached", "hub, not downloaded
yet", "missing") and its family, read without loading anything: for `models`, `doctor` and `pull`."""

from __future__ import annotations

from pathlib import Path

from generation.config import HUB_ID_PATTERN, ModelConfig


def model_family(config: ModelConfig, availability: str) -> str:
    """ ", SDXL" and the like once the checkpoint's files can be read; "" before (or the problem)."""
    from generation.errors import DreamcordError
    from generation.models.checkpoint_facts import family_of

    if availability not in ("local", "cached", "single file") and not config.family:
        return ""
    try:
        return f", {family_of(config).label}"
    except DreamcordError as error:
        return f", {error}"


def model_availability(source: str) -> str:
    """ "local" for a model folder, "cached"/"hub" for a hub id, "missing" for neither."""
    if (Path(source).expanduser() / "model_index.json").is_file():
        return "local"
    if Path(source).expanduser().is_file():
        return "single file"
    if HUB_ID_PATTERN.match(source):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "model_index.json")
        return "cached" if isinstance(cached, str) else "hub, not downloaded yet"
    return "missing"
