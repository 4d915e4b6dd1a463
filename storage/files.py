"""Content-addressed file store: files named by their sha256, written atomically, verified on read."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
log = logging.getLogger(__name__)


class StoredFileMissing(FileNotFoundError):
    """A file a row names is not in the store (deleted by hand, a lost disk)."""


class StoredFileDamaged(OSError):
    """A stored file's bytes no longer match its name (bit rot, replaced by hand)."""


class FileStore:
    """Files under `root/ab/abcdef…` (sharded by the first two hex digits of their sha256)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, data: bytes) -> str:
        """Store `data` and return its sha256; storing the same bytes twice is a no-op."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists() and _sha256_of(target) == digest:
            os.utime(target)  # fresh again: the sweeper's grace period starts over
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write next to the target, fsync, then rename: readers never see a half-written file.
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest

    def path(self, digest: str) -> Path:
        if not _HASH_RE.match(digest):
            raise ValueError(f"not a sha256 hex digest: {digest!r}")
        return self.root / digest[:2] / digest

    def read(self, digest: str) -> bytes:
        """The file's bytes, checked against its name: StoredFileMissing or StoredFileDamaged (logged
        for the operator) instead of silently using something else."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            log.error("stored file %s is missing from %s", digest, self.root)
            raise StoredFileMissing(f"stored file {digest[:12]}… is missing") from None
        if hashlib.sha256(data).hexdigest() != digest:
            log.error("stored file %s is damaged: its bytes no longer match its name", self.path(digest))
            raise StoredFileDamaged(f"stored file {digest[:12]}… is damaged")
        return data

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def older_than(self, seconds: float) -> Iterator[str]:
        """Every stored file not written (or stored again) in the last `seconds`: sweeping candidates."""
        cutoff = time.time() - seconds
        for path in self.root.glob("??/*"):
            if _HASH_RE.match(path.name) and path.stat().st_mtime < cutoff:
                yield path.name

    def delete(self, digest: str) -> bool:
        """Remove a file (only when no row refers to it any more: the caller checks)."""
        path = self.path(digest)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        return existed


def _sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
