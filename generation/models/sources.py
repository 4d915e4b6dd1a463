"""Where a model's weights come from: a local diffusers folder, or a hub id (read from the local
cache only when the hub is offline)."""

from __future__ import annotations

import os
from pathlib import Path

from generation.config import HUB_ID_PATTERN
from generation.errors import ModelNotFoundError


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_source(source: str, *, offline: bool, marker: str = "model_index.json") -> tuple[str, bool]:
    """Return (what to pass to from_pretrained, local_files_only) or raise a clear not-found error.

    `marker` is the file a folder of that kind has: model_index.json for a pipeline, config.json for
    a single model such as a ControlNet."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / marker).is_file():
            raise ModelNotFoundError(f"{path} is not a diffusers model folder (no {marker})")
        return str(path), True
    if HUB_ID_PATTERN.match(source) and not source.startswith((".", "~")):
        return source, offline
    raise ModelNotFoundError(
        f"model folder {source!r} does not exist (give a folder or a hub id like owner/name)"
    )
