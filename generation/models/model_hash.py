"""A checkpoint's `Model hash` as AUTOMATIC1111 writes it into pictures (and Civitai shows it): the first
10 hex digits of the SHA-256 of the whole file. Hashing a 6 GB file takes seconds, so the result is
kept in a small JSON file per data folder, keyed by the file's path, size and modification time."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from generation.models.single_file import is_single_file

log = logging.getLogger(__name__)
SHORT_HASH_LENGTH = 10
CACHE_FILE = "model-hashes.json"


def a1111_model_hash(source: str, cache_dir: Path | None = None) -> str | None:
    """The short hash of a single-file checkpoint; None for a folder or a hub id (A1111 never loads
    those, so no tool would match a hash of them)."""
    if not is_single_file(source):
        return None
    path = Path(source).expanduser().resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = _read_cache(cache_dir)
    if key not in cache:
        with path.open("rb") as file:
            cache[key] = hashlib.file_digest(file, "sha256").hexdigest()
        _write_cache(cache_dir, cache)
    return cache[key][:SHORT_HASH_LENGTH]


def _read_cache(cache_dir: Path | None) -> dict[str, str]:
    if cache_dir is None or not (cache_dir / CACHE_FILE).is_file():
        return {}
    try:
        loaded = json.loads((cache_dir / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def _write_cache(cache_dir: Path | None, cache: dict[str, str]) -> None:
    if cache_dir is None:
        return
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache_dir / f"{CACHE_FILE}.{os.getpid()}"
        partial.write_text(json.dumps(cache, indent=1), encoding="utf-8")
        partial.replace(cache_dir / CACHE_FILE)  # whole or not at all, even with two workers
    except OSError as error:  # a read-only data folder: hashed again next time, nothing lost
        log.warning("cannot keep model hashes in %s: %s", cache_dir, error)
